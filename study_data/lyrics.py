"""Lyrics tables: read, clean, sample, split, tokenise, cache.

The order of work, and why:
1. read the table (CSV or TSV) and find its columns by common names;
2. drop rows without text or genre, keep the chosen languages, take the
   seeded, stratified sample (the earlier study used 20 % of train.csv);
3. carve off the test split (or read --test-data), then split the rest 80/20
   into train and validation, stratified and seeded;
4. fit the tokenizer on the training split only and apply it to all three
   (the earlier study refitted a tokenizer on its test set);
5. cache the arrays on disk, keyed by the file's bytes and every option, so
   a second run, and every trial, never tokenises again.

Lyrics, artist and label of a row travel together as one row index through
every step, so they cannot drift apart.
"""

import collections
import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.model_selection import train_test_split

from suite_common import UserError, atomic, log

# The earlier study's preprocessing, as defaults.
DEFAULT_OPTIONS = {
    "sample_fraction": 1.0,  # every row; the earlier study used 0.2 (--sample-fraction 0.2)
    "seed": 42,
    "languages": None,  # None keeps every language
    "stopwords": "english",  # or "none"
    "clean": True,  # newlines, punctuation, lower case
    "vocab_size": 20000,
    "seq_len": 300,
    "val_fraction": 0.2,
    "test_fraction": 0.2,  # used only when no --test-data is given
}
# A genre needs this many rows to be split three ways, stratified.
MIN_ROWS_PER_GENRE = 5
COLUMN_CANDIDATES = {
    "text": ("lyrics", "text"),
    "label": ("genre", "target", "label"),
    "artist": ("artist",),
    "language": ("language",),
}
PAD, OOV = 0, 1
# Bounds of a saved tokenizer's values (far above any real use, far below an absurd allocation).
MAX_VOCAB, MAX_SEQ_LEN = 10 ** 7, 100_000
CACHE_VERSION = 2
DEMO_NOTICE = (
    "NOTE: no --data given, so this search uses the project's generated demo set "
    "(made-up words, not real lyrics). For the study, download the Kaggle dataset "
    '"Multi-Lingual Lyrics for Genre Classification" and pass --data path/to/train.csv '
    "(and --test-data path/to/test.csv)."
)


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------
_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


@dataclass
class TextEncoder:
    """Cleans raw lyrics and turns them into fixed-length id sequences.

    Ids: 0 pads, 1 is any word outside the vocabulary, 2.. are the training
    split's most frequent words. Sequences are padded and truncated at the
    front, as Keras' pad_sequences does by default.
    """

    vocab: list
    seq_len: int = 300
    clean: bool = True
    stopwords: str = "english"
    _index: dict = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(cls, cleaned_texts, vocab_size, seq_len, clean=True, stopwords="english"):
        counts = collections.Counter()
        for t in cleaned_texts:
            counts.update(t.split())
        # most_common keeps first-seen order among ties: deterministic.
        vocab = [w for w, _ in counts.most_common(max(vocab_size - 2, 0))]
        return cls(vocab=vocab, seq_len=seq_len, clean=clean, stopwords=stopwords)

    @property
    def vocab_size(self):
        return len(self.vocab) + 2

    def preprocess(self, text):
        """Raw lyrics -> the cleaned, stopword-free text every family sees."""
        text = str(text)
        if self.clean:
            text = _NOT_WORD.sub("", text.lower())
        words = _SPACE.split(text.strip())
        if self.stopwords == "english":
            words = [w for w in words if w not in ENGLISH_STOP_WORDS]
        return " ".join(w for w in words if w)

    def ids(self, cleaned_texts):
        if self._index is None:
            self._index = {w: i + 2 for i, w in enumerate(self.vocab)}
        index, n = self._index, self.seq_len
        out = np.zeros((len(cleaned_texts), n), dtype=np.int32)
        for row, text in enumerate(cleaned_texts):
            seq = [index.get(w, OOV) for w in text.split()][-n:]
            if seq:
                out[row, n - len(seq):] = seq
        return out

    def encode(self, raw_texts):
        return self.ids([self.preprocess(t) for t in raw_texts])

    def to_json(self):
        return json.dumps({"vocab": self.vocab, "seq_len": self.seq_len,
                           "clean": self.clean, "stopwords": self.stopwords})

    @classmethod
    def from_json(cls, text):
        """The saved tokenizer, its values checked (a tampered file raises ValueError, never allocates
        an absurd array)."""
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError("not a tokenizer")
        vocab, seq_len = d.get("vocab"), d.get("seq_len")
        if not isinstance(vocab, list) or len(vocab) > MAX_VOCAB or not all(isinstance(w, str) for w in vocab):
            raise ValueError(f"vocab must be a list of at most {MAX_VOCAB} words")
        if not isinstance(seq_len, int) or isinstance(seq_len, bool) or not 1 <= seq_len <= MAX_SEQ_LEN:
            raise ValueError(f"seq_len must be a whole number from 1 to {MAX_SEQ_LEN}")
        if not isinstance(d.get("clean"), bool) or d.get("stopwords") not in ("english", "none"):
            raise ValueError("clean must be true/false and stopwords 'english' or 'none'")
        return cls(vocab=vocab, seq_len=seq_len, clean=d["clean"], stopwords=d["stopwords"])


# --------------------------------------------------------------------------
# The prepared data set
# --------------------------------------------------------------------------
@dataclass
class Split:
    x: np.ndarray  # int32 [n, seq_len] token ids
    y: np.ndarray  # int32 [n] genre index into label_names
    texts: list  # cleaned texts (for TF-IDF and bag-of-words families)
    artists: list  # artist names, "" when the table has none
    rows: np.ndarray = None  # each row's index among the data rows of its file (the test file's for --test-data)


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
    file_hashes: dict = None  # {"data": sha256 of the file's bytes, "test_data": of the test file's, or None}

    @property
    def n_classes(self):
        return len(self.label_names)

    def describe(self):
        return (f"{self.source}: {len(self.train.y)} train / {len(self.val.y)} validation / "
                f"{len(self.test.y)} test rows, {self.n_classes} genres "
                f"({', '.join(self.label_names)}), vocabulary {self.encoder.vocab_size}, "
                f"seed {self.options['seed']}")


# --------------------------------------------------------------------------
# Reading tables
# --------------------------------------------------------------------------
def _decode(path, raw):
    if not raw.strip():
        raise UserError(f"data file {path} is empty: pass a CSV or TSV with a header row and lyrics rows")
    if b"\x00" in raw[:65536]:
        raise UserError(f"data file {path} is binary, not a CSV/TSV table: pass a lyrics CSV or TSV")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"data file {path} is not UTF-8 text (bad byte at offset {e.start}): "
                        "re-save it as UTF-8") from None


def _find_column(columns, role, explicit):
    lower = {c.strip().lower(): c for c in columns}
    if explicit:
        if explicit in columns:
            return explicit
        if explicit.lower() in lower:
            return lower[explicit.lower()]
        return None
    for name in COLUMN_CANDIDATES[role]:
        if name in lower:
            return lower[name]
    return None


def read_table(path, columns=None):
    """Read a lyrics CSV/TSV into a DataFrame with columns text, label, artist, language.

    `columns` may name the text/label/artist/language columns explicitly.
    """
    columns = columns or {}
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file not found: {path}: pass --data with the path of a lyrics CSV or TSV")
    if path.is_dir():
        raise UserError(f"--data {path} is a folder: pass the lyrics CSV or TSV file inside it")
    if not path.is_file():
        raise UserError(f"--data {path} is not a regular file (a pipe or device?): pass a lyrics CSV or TSV file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read data file {path}: {e.strerror}") from None
    return parse_table(path, raw, columns)


def _header_names(header, sep):
    """A header line's column names (none if the csv module cannot split it, e.g. a field over its limit)."""
    try:
        return next(csv.reader([header], delimiter=sep), [])
    except csv.Error:
        return []


def header_has_artist(path, columns=None):
    """Whether a table's header names an artist column (read before any row is prepared)."""
    columns = columns or {}
    if not Path(path).is_file():
        return True  # loading the table says what is wrong
    try:
        with open(path, "rb") as f:
            header = f.readline(1 << 20).decode("utf-8-sig", errors="replace")
    except OSError:
        return True
    for sep in ("\t", ",", ";", "|"):
        names = _header_names(header.rstrip("\r\n"), sep)
        if _find_column(names, "text", columns.get("text")) and _find_column(names, "label", columns.get("label")):
            return _find_column(names, "artist", columns.get("artist")) is not None
    return True  # no recognisable header: loading the table says why


def parse_table(path, raw, columns=None):
    columns = columns or {}
    text = _decode(path, raw)
    header = text.split("\n", 1)[0]
    # The extension decides first; a header that only splits on another
    # delimiter (a TSV saved as .csv, say) decides otherwise.
    first = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    seps = [first] + [s for s in (",", "\t", ";", "|") if s != first]
    sep = first
    for s in seps:
        names = _header_names(header, s)
        if _find_column(names, "text", columns.get("text")) and _find_column(names, "label", columns.get("label")):
            sep = s
            break
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, csv.Error) as e:
        raise UserError(f"data file {path} is not a readable CSV/TSV table: {str(e).splitlines()[0]}") from None
    if len(df) == 0:
        raise UserError(f"data file {path} has a header but no rows: pass a table with lyrics rows")
    found = {}
    for role in ("text", "label", "artist", "language"):
        found[role] = _find_column(list(df.columns), role, columns.get(role))
        if columns.get(role) and found[role] is None:
            raise UserError(f"column {columns[role]!r} (--{role}-column) is not in {path}; "
                            f"its columns are: {', '.join(map(str, df.columns))}")
    for role, flag in (("text", "lyrics/text"), ("label", "genre/target/label")):
        if found[role] is None:
            raise UserError(f"{path} has no {role} column (looked for {flag}, any case); its columns are: "
                            f"{', '.join(map(str, df.columns))}. Name it with --{role}-column")
    out = pd.DataFrame({
        "row": np.arange(len(df)),  # follows the row through dropping, sampling and splitting
        "text": df[found["text"]].astype(str),
        "label": df[found["label"]].astype(str).str.strip(),
        "artist": df[found["artist"]].astype(str).str.strip() if found["artist"] else "",
        "language": df[found["language"]].astype(str).str.strip() if found["language"] else "",
    })
    out.attrs["has_artist"] = found["artist"] is not None
    return out


# --------------------------------------------------------------------------
# Preparing splits
# --------------------------------------------------------------------------
def _filter_rows(df, path, languages):
    missing = (df["text"].str.strip() == "") | (df["label"] == "") | df["label"].str.lower().isin(["nan", "none", "null"])
    if missing.all():
        raise UserError(f"{path}: no row has both lyrics and a genre: check the text and label columns")
    if missing.any():
        log(f"dropped {int(missing.sum())} rows of {path.name} without lyrics or genre")
    df = df[~missing]
    if languages:
        keep = df["language"].str.lower().isin([l.lower() for l in languages])
        if not keep.any():
            raise UserError(f"{path}: no rows in languages {', '.join(languages)}; it has: "
                            f"{', '.join(sorted(set(df['language'])))}")
        df = df[keep]
    return df


def _prepare(data_path, raw, test_path, test_raw, opts, columns):
    seed = opts["seed"]
    df = parse_table(data_path, raw, columns)
    has_artist = df.attrs["has_artist"]
    df = _filter_rows(df, data_path, opts["languages"])
    if opts["sample_fraction"] < 1.0:
        df = df.groupby("label", group_keys=False).sample(frac=opts["sample_fraction"], random_state=seed)
    counts = df["label"].value_counts()
    small = counts[counts < MIN_ROWS_PER_GENRE]
    if len(small):
        log("dropped genres with fewer than %d rows (too few to split): %s"
            % (MIN_ROWS_PER_GENRE, ", ".join(f"{g} ({n})" for g, n in small.items())))
        df = df[~df["label"].isin(small.index)]
    label_names = sorted(df["label"].unique())
    if len(label_names) < 2:
        only = f" (only {label_names[0]!r})" if label_names else ""
        raise UserError(f"{data_path}: need at least two genres with {MIN_ROWS_PER_GENRE}+ rows each "
                        f"after sampling{only}: pass more data or a larger --sample-fraction")
    df = df.reset_index(drop=True)
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
        test_df = _filter_rows(parse_table(test_path, test_raw, columns), test_path, opts["languages"])
        unseen = ~test_df["label"].isin(label_names)
        if unseen.all():
            raise UserError(f"--test-data {test_path}: none of its genres were seen in training "
                            f"({', '.join(label_names)})")
        if unseen.any():
            log(f"dropped {int(unseen.sum())} test rows with genres unseen in training: "
                f"{', '.join(sorted(set(test_df['label'][unseen])))}")
        test_df = test_df[~unseen]
        y_test = test_df["label"].map({g: i for i, g in enumerate(label_names)}).to_numpy(np.int32)

    probe = TextEncoder(vocab=[], clean=opts["clean"], stopwords=opts["stopwords"])
    cleaned = [probe.preprocess(t) for t in df["text"]]
    train_texts = [cleaned[i] for i in train_rows]
    encoder = TextEncoder.fit(train_texts, opts["vocab_size"], opts["seq_len"], opts["clean"], opts["stopwords"])

    def split(texts, artists, y, source_rows):
        return Split(x=encoder.ids(texts), y=y, texts=texts, artists=list(artists),
                     rows=np.asarray(source_rows, dtype=np.int64))

    artists, source_rows = df["artist"].tolist(), df["row"].to_numpy()
    train = split(train_texts, [artists[i] for i in train_rows], y_all[train_rows], source_rows[train_rows])
    val = split([cleaned[i] for i in val_rows], [artists[i] for i in val_rows], y_all[val_rows],
                source_rows[val_rows])
    test = split([probe.preprocess(t) for t in test_df["text"]], test_df["artist"].tolist(), y_test,
                 test_df["row"].to_numpy())
    return train, val, test, label_names, encoder, has_artist


# --------------------------------------------------------------------------
# Cache: one .npz per (file bytes, test file bytes, options); no pickle.
# --------------------------------------------------------------------------
def _pack_texts(texts):
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.cumsum([0] + [len(b) for b in encoded]).astype(np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _unpack_texts(blob, offsets):
    data = blob.tobytes()
    return [data[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]


def _save_cache(path, train, val, test, label_names, encoder, has_artist):
    arrays = {}
    for name, s in (("train", train), ("val", val), ("test", test)):
        arrays[f"{name}_x"], arrays[f"{name}_y"], arrays[f"{name}_rows"] = s.x, s.y, s.rows
        arrays[f"{name}_texts"], arrays[f"{name}_texts_offsets"] = _pack_texts(s.texts)
        arrays[f"{name}_artists"], arrays[f"{name}_artists_offsets"] = _pack_texts(s.artists)
    meta = {"version": CACHE_VERSION, "label_names": label_names, "has_artist": has_artist,
            "encoder": encoder.to_json()}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic.write_bytes(path, buf.getvalue())


def _load_cache(path):
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
        if meta.get("version") != CACHE_VERSION:
            raise ValueError("old cache version")
        splits = []
        for name in ("train", "val", "test"):
            splits.append(Split(x=z[f"{name}_x"], y=z[f"{name}_y"], rows=z[f"{name}_rows"],
                                texts=_unpack_texts(z[f"{name}_texts"], z[f"{name}_texts_offsets"]),
                                artists=_unpack_texts(z[f"{name}_artists"], z[f"{name}_artists_offsets"])))
    return (*splits, meta["label_names"], TextEncoder.from_json(meta["encoder"]), meta["has_artist"])


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


def load(data=None, test_data=None, cache_dir="results/_cache", columns=None, announce_demo=True, **options):
    """Prepare the lyrics splits; read them from the cache when it has them.

    `data=None` uses the generated demo table (and says so).
    Options default to the earlier study's values (DEFAULT_OPTIONS).
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
    cache_dir = Path(cache_dir)
    is_demo = data is None
    if is_demo:
        if announce_demo:
            print(DEMO_NOTICE, flush=True)
        data = make_demo_table(cache_dir / "demo-lyrics.csv")
    data = Path(data)
    raw = _read_bytes(data, "--data")
    test_raw = _read_bytes(test_data, "--test-data") if test_data else None
    columns = {k: v for k, v in (columns or {}).items() if v}

    file_hashes = {"data": hashlib.sha256(raw).hexdigest()[:16],
                   "test_data": hashlib.sha256(test_raw).hexdigest()[:16] if test_raw is not None else None}
    h = hashlib.sha256(raw)
    h.update(hashlib.sha256(test_raw or b"").digest())
    h.update(json.dumps([opts, columns, CACHE_VERSION], sort_keys=True).encode())
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
        _save_cache(cache_path, *parts)
    train, val, test, label_names, encoder, has_artist = parts
    source = "generated demo lyrics (not real data)" if is_demo else str(data)
    return LyricsData(train=train, val=val, test=test, label_names=list(label_names), encoder=encoder,
                      has_artist=has_artist, options=opts, source=source, is_demo=is_demo,
                      fingerprint=fingerprint, file_hashes=file_hashes)


# --------------------------------------------------------------------------
# The generated demo table (Kaggle layout: Artist, Song, Genre, Language, Lyrics)
# --------------------------------------------------------------------------
DEMO_GENRES = ("Rock", "Pop", "Metal", "Hip-Hop")


def make_demo_table(path, n_rows=3000, seed=0):
    """Write (once) a deterministic made-up lyrics table and return its path.

    Each genre draws part of its words from a pool of its own and the rest
    from a shared pool, plus English stopwords, so the genre is learnable but
    not trivially; each artist sings one genre.
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
            pool = [own[genre] if rng.random() < 0.1 else shared if rng.random() < 0.8 else stop
                    for _ in range(int(rng.integers(4, 9)))]
            lines.append(" ".join(str(rng.choice(p)) for p in pool).capitalize() + rng.choice([",", "!", ".", ""]))
        rows.append({"Artist": artist, "Song": f"Demo Song {i}", "Genre": genre, "Language": "en",
                     "Lyrics": "\n".join(lines)})
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    atomic.write_text(path, buf.getvalue())
    return path


class TokenIdFeatures:
    """scikit-learn transformer: cleaned texts -> padded token-id matrix.

    The earlier study fed these raw ids to its decision tree; the tree family
    keeps them as one choice of features. Fitted on the training texts only.
    Plain attributes only, so skops can store it without pickle.
    """

    def __init__(self, vocab_size=20000, seq_len=300):
        self.vocab_size, self.seq_len = vocab_size, seq_len

    def get_params(self, deep=True):
        return {"vocab_size": self.vocab_size, "seq_len": self.seq_len}

    def set_params(self, **params):
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, texts, y=None):
        self.vocab_ = TextEncoder.fit(texts, self.vocab_size, self.seq_len, clean=False, stopwords="none").vocab
        return self

    def transform(self, texts):
        return TextEncoder(vocab=self.vocab_, seq_len=self.seq_len, clean=False, stopwords="none").ids(list(texts))

    def fit_transform(self, texts, y=None):
        return self.fit(texts).transform(texts)


def artist_token(artist):
    """The artist as one token of its own, which no cleaned lyric word can equal."""
    return "__artist__" + (re.sub(r"\W+", "_", artist.strip().lower()) or "unknown")


def artist_index(train_artists):
    """Artist -> id, from the training split only; id 0 is every unseen artist."""
    return {a: i + 1 for i, a in enumerate(sorted(set(train_artists)))}


def model_inputs(kind, ids, cleaned_texts, artists=None, artists_index=None):
    """What a family's model takes, the same at training and at prediction time.

    kind "sequences" (Keras): {"lyrics": ids} plus {"artist": [n, 1] ids};
    kind "texts" (scikit-learn): cleaned texts, the artist appended as a token.
    """
    if kind == "texts":
        if artists is None:
            return list(cleaned_texts)
        return [f"{t} {artist_token(a)}" for t, a in zip(cleaned_texts, artists)]
    x = {"lyrics": ids}
    if artists is not None:
        x["artist"] = np.array([[artists_index.get(a, 0)] for a in artists], dtype=np.int32).reshape(-1, 1)
    return x
