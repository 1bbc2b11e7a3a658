"""Lyrics tables: read, clean, sample, split, tokenise, cache.

The order of work, and why:
1. read the table (CSV or TSV) and find its columns by common names (study_data/lyrics_table.py);
2. take the seeded sample of the whole file, drawn as the earlier study drew its 20 % of train.csv
   (df.sample(n, random_state=seed)), then drop rows without text or genre (the study's dropna, after its
   sample) and keep the chosen languages;
3. carve off the test split (or read --test-data), then split the rest 80/20
   into train and validation, stratified and seeded;
4. fit the tokenizer on the training split only and apply it to all three
   (the earlier study refitted a tokenizer on its test set);
5. cache the arrays on disk, keyed by the file's bytes and every option, so
   a second run, and every trial, never tokenises again.

Lyrics, artist and label of a row travel together as one row index through
every step, so they cannot drift apart.
"""

import logging
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from typing import Any, Optional

import numpy as np
from sklearn.model_selection import train_test_split

from lyrics_cifar_search.study_data import lyrics_cache
from lyrics_cifar_search.study_data.lyrics_demo import DEMO_ROWS, make_demo_table
# reading the table (lyrics_table.py)
from lyrics_cifar_search.study_data.lyrics_table import parse_table
from lyrics_cifar_search.study_data.text import PIPELINES, TextEncoder
# decision trees saved before the split name it here
from lyrics_cifar_search.study_data.text import TokenIdFeatures  # noqa: F401
from lyrics_cifar_search.suite_common import UserError, counted, log

logger = logging.getLogger(__name__)

# The earlier study's preprocessing, as defaults.
DEFAULT_OPTIONS = {
    "sample_fraction": 1.0,  # every row; the earlier study used 0.2 (--sample-fraction 0.2)
    "seed": 42,
    "languages": None,  # None keeps every language
    "stopwords": "english",  # or "none"
    "text_pipeline": "study",  # the earlier study's order (study_data/text.py, PIPELINES), or "suite"
    "clean": True,  # newlines, punctuation, lower case
    "vocab_size": 20000,
    "seq_len": 300,
    "val_fraction": 0.2,
    "test_fraction": 0.2,  # used only when no --test-data is given
}
# A genre needs this many rows to be split three ways, stratified.
MIN_ROWS_PER_GENRE = 5
CACHE_VERSION = 5  # 3: songs repeated within the data removed before splitting; 4: the study's text pipeline;
# 5: --sample-fraction draws the study's df.sample, not a stratified sample
# A sample (--sample-fraction < 1) is drawn from the whole file since 2026-12-07, before rows without lyrics are
# dropped: such a sample's fingerprint says so (the data of every other search is what it was, and resumes)
SAMPLED_FROM_THE_WHOLE_FILE = "sample drawn before rows without lyrics are dropped"
# The study's pipeline tokenises as Keras's Tokenizer since 2026-12-07 (ids from 1, num_words - 1 words, an
# underscore splits words): its searches' ids, and so their fingerprint, are new; the suite pipeline's are not
KERAS_TOKENIZER = "Keras Tokenizer ids and filters"
DEMO_NOTICE = (
    "NOTE: no --data given, so this search uses the project's generated demo set "
    "(made-up words, not real lyrics). For the study, download the Kaggle dataset "
    '"Multi-Lingual Lyrics for Genre Classification" and pass --data path/to/train.csv '
    "(and --test-data path/to/test.csv)."
)


@dataclass
class Split:
    x: np.ndarray  # int32 [n, seq_len] token ids
    y: np.ndarray  # int32 [n] genre index into label_names
    texts: list  # cleaned texts (for TF-IDF and bag-of-words families)
    artists: list  # artist names, "" when the table has none
    rows: Optional[np.ndarray] = None  # each row's index among the data rows of its file (the test file's for --test-data)


@dataclass
class LyricsData:
    train: Split
    val: Split
    test: Split
    label_names: list
    encoder: TextEncoder
    has_artist: bool
    options: dict
    source: str
    is_demo: bool
    fingerprint: str  # the file bytes, test file bytes, options and columns: what the splits are made of
    file_hashes: Optional[dict] = None  # {"data": sha256 of the file's bytes, "test_data": of the test file's, or None}
    duplicates: Optional[dict] = None  # songs removed as repeats before splitting (_deduplicate)
    dropped: Optional[dict] = None  # rows dropped before splitting, by why (_filter_rows, _genres_to_learn); None: not known

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def describe(self) -> str:
        d = self.duplicates or {}
        removed = d.get("removed", 0) + d.get("test_removed", 0)
        return (f"{self.source}: {len(self.train.y)} train / {len(self.val.y)} validation / "
                f"{len(self.test.y)} test rows, {self.n_classes} genres "
                f"({', '.join(self.label_names)}), vocabulary {self.encoder.vocab_size}, "
                f"seed {self.options['seed']}" + (f"; {removed} repeated songs removed before splitting"
                                                  if removed else ""))


# --------------------------------------------------------------------------
# Preparing splits
# --------------------------------------------------------------------------
PLACEHOLDER_GENRES = {"not available", "other"}  # compared lower-cased


def _filter_rows(df, path, languages):
    """The rows to learn from, and what was dropped: {"without_lyrics_or_genre": n, "placeholder_genres":
    {genre: n}, "other_languages": n} (saved in search.json and best/meta.json, shown by the report)."""
    dropped: dict[str, Any] = {}
    missing = (df["text"].str.strip() == "") | (df["label"] == "") | df["label"].str.lower().isin(["nan", "none", "null"])
    if missing.all():
        raise UserError(f"{path}: no row has both lyrics and a genre: check the text and label columns")
    if missing.any():
        log(f"dropped {int(missing.sum())} rows of {path.name} without lyrics or genre")
        dropped["without_lyrics_or_genre"] = int(missing.sum())
    df = df[~missing]
    # MetroLyrics-style tables file songs of no known genre under these: they are not genres to learn
    placeholder = df["label"].str.strip().str.lower().isin(PLACEHOLDER_GENRES)
    if placeholder.all():
        raise UserError(f"{path}: every row's genre is a placeholder ({', '.join(sorted(set(df['label'])))}): "
                        "check the label column")
    if placeholder.any():
        counts = df.loc[placeholder, "label"].value_counts()
        log(f"dropped {int(placeholder.sum())} rows of {path.name} whose genre is a placeholder, not a genre ("
            + ", ".join(f"{g}: {n}" for g, n in counts.items()) + ")")
        dropped["placeholder_genres"] = {str(g): int(n) for g, n in counts.items()}
    df = df[~placeholder]
    if languages:
        keep = df["language"].str.lower().isin([l.lower() for l in languages])
        if not keep.any():
            raise UserError(f"{path}: no rows in languages {', '.join(languages)}; it has: "
                            f"{', '.join(sorted(set(df['language'])))}")
        if not keep.all():
            dropped["other_languages"] = int((~keep).sum())
        df = df[keep]
    return df, dropped


def _deduplicate(df, probe):
    """Keep the first of the rows whose lyrics are the same once cleaned (the text every family sees), so a
    song cannot sit in training and in validation or test at once. Returns the rows kept, their cleaned
    texts (column `clean`) and the counts removed (also of repeats with another genre than the first)."""
    cleaned = [probe.preprocess(t) for t in counted(df["text"], len(df), "cleaning the lyrics")]
    if not any(cleaned):  # said before every song collapses into one empty "repeat"
        raise UserError("no words are left in the lyrics after cleaning and removing stopwords: check the text "
                        "column, or try --stopwords none / --no-clean")
    first: dict[str, int] = {}  # cleaned lyrics -> the row of their first copy
    keep, conflicting = [], 0
    labels = df["label"].tolist()
    for i, text in enumerate(cleaned):
        if text in first:
            conflicting += labels[first[text]] != labels[i]
            continue
        first[text] = i
        keep.append(i)
    if len(keep) < len(df):
        log(f"removed {len(df) - len(keep)} repeated songs (the same lyrics once cleaned; {conflicting} of them "
            "with another genre than the first copy) before splitting")
    kept = df.iloc[keep].assign(clean=[cleaned[i] for i in keep])
    return kept, {"removed": len(df) - len(keep), "with_another_genre": conflicting}


def _genres_to_learn(df, data_path, dropped):
    """Genres with too few rows to split are dropped (said in one line, and counted in dropped["small_genres"]);
    two must remain. Returns the rows, indexed 0..n-1, and the genre names in label order."""
    counts = df["label"].value_counts()
    small = counts[counts < MIN_ROWS_PER_GENRE]
    if len(small):
        log("dropped genres with fewer than %d rows (too few to split): %s"
            % (MIN_ROWS_PER_GENRE, ", ".join(f"{g} ({n})" for g, n in small.items())))
        dropped["small_genres"] = {str(g): int(n) for g, n in small.items()}
        df = df[~df["label"].isin(small.index)]
    label_names = sorted(df["label"].unique())
    if len(label_names) < 2:
        only = f" (only {label_names[0]!r})" if label_names else ""
        raise UserError(f"{data_path}: need at least two genres with {MIN_ROWS_PER_GENRE}+ rows each "
                        f"after sampling{only}: pass more data or a larger --sample-fraction")
    return df.reset_index(drop=True), label_names


def _given_test_rows(test_path, test_raw, columns, opts, label_names, probe, seen_texts, duplicates):
    """--test-data's rows and labels: genres unseen in training dropped, and songs the model trained or was
    selected on (their cleaned lyrics in `seen_texts`) removed, counted in duplicates["test_removed"]."""
    test_df, _ = _filter_rows(parse_table(test_path, test_raw, columns), test_path, opts["languages"])
    unseen = ~test_df["label"].isin(label_names)
    if unseen.all():
        raise UserError(f"--test-data {test_path}: none of its genres were seen in training "
                        f"({', '.join(label_names)})")
    if unseen.any():
        log(f"dropped {int(unseen.sum())} test rows with genres unseen in training: "
            f"{', '.join(sorted(set(test_df['label'][unseen])))}")
    test_df = test_df[~unseen]
    test_df = test_df.assign(clean=[probe.preprocess(t) for t in test_df["text"]])
    seen = test_df["clean"].isin(seen_texts)
    if seen.any():  # a song the model trained or was selected on is no test of it
        log(f"removed {int(seen.sum())} rows of --test-data {test_path.name} whose lyrics are also in the "
            "training or validation rows")
        test_df = test_df[~seen]
    duplicates["test_removed"] = int(seen.sum())
    if test_df.empty:
        raise UserError(f"--test-data {test_path}: no row is left to test on (every one repeats a training or "
                        "validation song, or has a genre unseen in training): pass songs the data does not hold")
    y_test = test_df["label"].map({g: i for i, g in enumerate(label_names)}).to_numpy(np.int32)
    return test_df, y_test


def _prepare(data_path, raw, test_path, test_raw, opts, columns):
    """Steps 2-4 of the module's docstring, in that order (one function: each step feeds the next)."""
    seed = opts["seed"]
    df = parse_table(data_path, raw, columns)
    has_artist = df.attrs["has_artist"]
    if opts["sample_fraction"] < 1.0:  # the earlier study's own call: df.sample(int(0.2 * len(df)), random_state=42)
        # on the whole file, as the study drew it: rows without lyrics are dropped after (its dropna, cell 8)
        df = df.sample(int(opts["sample_fraction"] * len(df)), random_state=seed)
    df, dropped = _filter_rows(df, data_path, opts["languages"])
    probe = TextEncoder(vocab=[], clean=opts["clean"], stopwords=opts["stopwords"], pipeline=opts["text_pipeline"])
    df, duplicates = _deduplicate(df, probe)
    df, label_names = _genres_to_learn(df, data_path, dropped)
    y_all = df["label"].map({g: i for i, g in enumerate(label_names)}).to_numpy(np.int32)

    rows = np.arange(len(df))
    try:
        if test_path is None:
            rows, test_rows = train_test_split(rows, test_size=opts["test_fraction"], stratify=y_all,
                                               random_state=seed)
        train_rows, val_rows = train_test_split(rows, test_size=opts["val_fraction"], stratify=y_all[rows],
                                                random_state=seed)
    except ValueError as e:
        raise UserError(f"{data_path}: too few rows to split into train/validation/test ({e}); "
                        "pass more data or a larger --sample-fraction") from None

    if test_path is None:
        test_df, y_test = df.iloc[test_rows], y_all[test_rows]
    else:
        test_df, y_test = _given_test_rows(test_path, test_raw, columns, opts, label_names, probe,
                                           set(df["clean"][np.concatenate([train_rows, val_rows])]), duplicates)

    cleaned = df["clean"].tolist()
    train_texts = [cleaned[i] for i in train_rows]
    encoder = TextEncoder.fit(train_texts, opts["vocab_size"], opts["seq_len"], opts["clean"], opts["stopwords"],
                              opts["text_pipeline"])

    def split(texts, artists, y, source_rows):
        return Split(x=encoder.ids(texts), y=y, texts=texts, artists=list(artists),
                     rows=np.asarray(source_rows, dtype=np.int64))

    artists, source_rows = df["artist"].tolist(), df["row"].to_numpy()
    train = split(train_texts, [artists[i] for i in train_rows], y_all[train_rows], source_rows[train_rows])
    val = split([cleaned[i] for i in val_rows], [artists[i] for i in val_rows], y_all[val_rows],
                source_rows[val_rows])
    test = split(test_df["clean"].tolist(), test_df["artist"].tolist(), y_test, test_df["row"].to_numpy())
    return train, val, test, label_names, encoder, has_artist, duplicates, dropped


# --------------------------------------------------------------------------
# Cache: one .npz per (file bytes, test file bytes, options); no pickle.
# --------------------------------------------------------------------------
def _load_cache(path):
    fields, label_names, encoder, has_artist, duplicates, dropped = lyrics_cache.read(path, CACHE_VERSION)
    return (*(Split(**f) for f in fields), label_names, TextEncoder.from_json(encoder), has_artist, duplicates,
            dropped)


def _read_bytes(path, flag):
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag} file not found: {path}: pass the path of a lyrics CSV or TSV")
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder: pass the lyrics CSV or TSV file inside it")
    if not path.is_file():  # a FIFO would wait for a writer, /dev/zero never ends
        raise UserError(f"{flag} {path} is not a regular file (a pipe or device?): pass a lyrics CSV or TSV file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {flag} file {path}: {e.strerror}") from None


def load(data: str | Path | None = None, test_data: str | Path | None = None,
         cache_dir: str | Path = "results/_cache", columns: Optional[dict] = None, announce_demo: bool = True,
         deferred_writes: Optional[list] = None, **options) -> LyricsData:
    """Prepare the lyrics splits; read them from the cache when it has them.

    `data=None` uses the generated demo table (and says so).
    Options default to the earlier study's values (DEFAULT_OPTIONS).
    deferred_writes: a list to which the cache write is appended instead of done (a search writes it once
    the resume guard has accepted the data, so a refused run leaves the cache as it was).
    """
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown options: {sorted(unknown)}")
    opts = {**DEFAULT_OPTIONS, **options}
    if not 0 < opts["sample_fraction"] <= 1:
        raise UserError(f"--sample-fraction must be in (0, 1], got {opts['sample_fraction']}")
    for k in ("val_fraction", "test_fraction"):
        if not 0 < opts[k] < 1:
            raise UserError(f"--{k.replace('_', '-')} must be in (0, 1), got {opts[k]}")
    if opts["vocab_size"] < 3 or opts["seq_len"] < 1:
        raise UserError("--vocab-size must be at least 3 and --seq-len at least 1")
    if opts["stopwords"] not in ("english", "none"):
        raise UserError(f"--stopwords must be 'english' or 'none', got {opts['stopwords']!r}")
    if opts["text_pipeline"] not in PIPELINES:
        raise UserError(f"--text-pipeline must be one of {', '.join(PIPELINES)}, got {opts['text_pipeline']!r}")
    cache_dir = Path(cache_dir)
    is_demo = data is None
    if data is None:
        if announce_demo:
            logger.info(DEMO_NOTICE)
        data = make_demo_table(cache_dir / f"demo-lyrics-{DEMO_ROWS}.csv")  # a resized demo is a new file
    data = Path(data)
    raw = _read_bytes(data, "--data")
    test_raw = _read_bytes(test_data, "--test-data") if test_data else None
    columns = {k: v for k, v in (columns or {}).items() if v}

    file_hashes = {"data": hashlib.sha256(raw).hexdigest()[:16],
                   "test_data": hashlib.sha256(test_raw).hexdigest()[:16] if test_raw is not None else None}
    h = hashlib.sha256(raw)
    h.update(hashlib.sha256(test_raw or b"").digest())
    h.update(json.dumps([opts, columns, CACHE_VERSION] + ([SAMPLED_FROM_THE_WHOLE_FILE] if opts["sample_fraction"] < 1
                                                          else [])
                        + ([KERAS_TOKENIZER] if opts["text_pipeline"] == "study" else []), sort_keys=True).encode())
    fingerprint = h.hexdigest()[:16]
    cache_path = cache_dir / f"lyrics-{fingerprint}.npz"
    parts = None
    if cache_path.exists():
        try:
            parts = _load_cache(cache_path)
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            log(f"cache {cache_path} is unreadable ({type(e).__name__}); rebuilding it")
    if parts is None:
        parts = _prepare(data, raw, Path(test_data) if test_data else None, test_raw, opts, columns)
        write = (lambda: lyrics_cache.write(cache_path, CACHE_VERSION, *parts))
        deferred_writes.append(write) if deferred_writes is not None else write()
    train, val, test, label_names, encoder, has_artist, duplicates, dropped = parts
    source = "generated demo lyrics (not real data)" if is_demo else str(data)
    return LyricsData(train=train, val=val, test=test, label_names=list(label_names), encoder=encoder,
                      has_artist=has_artist, options=opts, source=source, is_demo=is_demo,
                      fingerprint=fingerprint, file_hashes=file_hashes, duplicates=duplicates, dropped=dropped)
