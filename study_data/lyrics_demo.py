"""The generated demo lyrics table (Kaggle layout: Artist, Song, Genre, Language, Lyrics), for tests and
offline runs: made-up words, not real lyrics."""

import io
from pathlib import Path

import numpy as np
import pandas as pd

from lyrics_cifar_search.suite_common import atomic

DEMO_GENRES = ("Rock", "Pop", "Metal", "Hip-Hop")
# Sized so that the README's first command (lyrics_lstm: 10 trials of up to 20 epochs) ends in about a
# minute on a 2-core CPU (README, Performance); the real data is a --data flag away.
DEMO_ROWS = 150


def make_demo_table(path: str | Path, n_rows: int = DEMO_ROWS, seed: int = 0, own_share: float = 0.25) -> Path:
    """Write (once) a deterministic made-up lyrics table and return its path.

    Each genre draws a share of its words (own_share) from a pool of its own
    and the rest from a shared pool, plus English stopwords, so the genre is
    learnable but not trivially; each artist sings one genre.
    """
    path = Path(path)
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    syll = ["ka", "lo", "mi", "ra", "tu", "ve", "zo", "ne", "pa", "shi", "dor", "mal", "fen", "gri", "bu"]

    def words(n):
        return ["".join(rng.choice(syll, size=rng.integers(2, 4))) for _ in range(n)]

    shared = words(300)
    own = {g: words(40) for g in DEMO_GENRES}
    stop = ["the", "and", "you", "i", "me", "my", "we", "to", "of", "in", "it", "is"]
    rows = []
    for i in range(n_rows):
        g = int(rng.choice(len(DEMO_GENRES), p=[0.4, 0.3, 0.2, 0.1]))
        genre, artist = DEMO_GENRES[g], f"Demo Artist {8 * g + int(rng.integers(8)) + 1}"
        lines = []
        for _ in range(int(rng.integers(4, 12))):
            pool = [own[genre] if rng.random() < own_share else shared if rng.random() < 0.8 else stop
                    for _ in range(int(rng.integers(4, 9)))]
            lines.append(" ".join(str(rng.choice(p)) for p in pool).capitalize() + rng.choice([",", "!", ".", ""]))
        rows.append({"Artist": artist, "Song": f"Demo Song {i}", "Genre": genre, "Language": "en",
                     "Lyrics": "\n".join(lines)})
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    atomic.write_text(path, buf.getvalue())
    return path
