"""Text to model inputs: cleaning, the tokenizer (fitted on training texts only), token-id features for
scikit-learn, and the artist as an input. Plain Python and NumPy: the same on every Keras backend."""

import collections
import json
import re
from dataclasses import dataclass, field

from typing import Any, Iterable, Optional, Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS


PAD, OOV = 0, 1
# Bounds of a saved tokenizer's values (far above any real use, far below an absurd allocation).
MAX_VOCAB, MAX_SEQ_LEN = 10 ** 7, 100_000

_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


# How raw lyrics become ids (--text-pipeline):
#   "study": the earlier study's order: stopwords removed from the raw words (case-sensitive, so "I" and "The"
#            stay), then newlines and punctuation removed and everything lower-cased; words outside the
#            vocabulary left out, as Keras's Tokenizer without an oov_token does;
#   "suite": lower-cased and cleaned first, then stopwords removed; words outside the vocabulary id 1.
PIPELINES = ("study", "suite")


@dataclass
class TextEncoder:
    """Cleans raw lyrics and turns them into fixed-length id sequences.

    Ids: 0 pads, 1 is any word outside the vocabulary (pipeline "suite"; the
    study's pipeline leaves such words out), 2.. are the training split's most
    frequent words. Sequences are padded and truncated at the front, as Keras'
    pad_sequences does by default.

    keras_ids (what fit() gives the study's pipeline): Keras's Tokenizer(num_words=N) exactly: ids 1..N-1 (no
    slot kept for unknown words: the study's Tokenizer had no oov_token), so N-1 words, and an underscore
    splits words (it is among the Tokenizer's filters; the cleaned text keeps it, as the study's regex did).
    A tokenizer saved before it was recorded has the ids from 2, and underscores inside words.
    """

    vocab: list
    seq_len: int = 300
    clean: bool = True
    stopwords: str = "english"
    pipeline: str = "study"
    keras_ids: bool = False
    _index: Optional[dict] = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(cls, cleaned_texts: Sequence[str], vocab_size: int, seq_len: int, clean: bool = True,
            stopwords: str = "english", pipeline: str = "study") -> "TextEncoder":
        encoder = cls(vocab=[], seq_len=seq_len, clean=clean, stopwords=stopwords, pipeline=pipeline,
                      keras_ids=pipeline == "study")
        counts: collections.Counter[str] = collections.Counter()
        for t in cleaned_texts:
            counts.update(encoder.words(t))
        # most_common keeps first-seen order among ties (deterministic), as Keras's Tokenizer sorts its counts
        encoder.vocab = [w for w, _ in counts.most_common(max(vocab_size - encoder.first_id, 0))]
        return encoder

    @property
    def first_id(self) -> int:
        """The first word's id: 1 (Keras's Tokenizer: 0 pads) or 2 (0 pads, 1 is any unknown word)."""
        return 1 if self.keras_ids else 2

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + self.first_id

    def words(self, cleaned_text: str) -> list[str]:
        """A cleaned text's words as the tokenizer counts them (Keras's: an underscore splits them too)."""
        return (cleaned_text.replace("_", " ") if self.keras_ids else cleaned_text).split()

    def preprocess(self, text: str) -> str:
        """Raw lyrics -> the cleaned, stopword-free text every family sees."""
        text = str(text)
        if self.pipeline == "study" and self.stopwords == "english":  # the raw words, before lower-casing
            text = " ".join(w for w in text.split() if w not in ENGLISH_STOP_WORDS)
        if self.clean:
            text = _NOT_WORD.sub("", text.lower())
        words = _SPACE.split(text.strip())
        if self.pipeline == "suite" and self.stopwords == "english":
            words = [w for w in words if w not in ENGLISH_STOP_WORDS]
        return " ".join(w for w in words if w)

    def ids(self, cleaned_texts: Sequence[str]) -> np.ndarray:
        if self._index is None:
            self._index = {w: i + self.first_id for i, w in enumerate(self.vocab)}
        index, n = self._index, self.seq_len
        out = np.zeros((len(cleaned_texts), n), dtype=np.int32)
        for row, text in enumerate(cleaned_texts):
            if self.pipeline == "study":  # words outside the vocabulary are left out
                seq = [index[w] for w in self.words(text) if w in index][-n:]
            else:
                seq = [index.get(w, OOV) for w in self.words(text)][-n:]
            if seq:
                out[row, n - len(seq):] = seq
        return out

    def encode(self, raw_texts: Sequence[str]) -> np.ndarray:
        return self.ids([self.preprocess(t) for t in raw_texts])

    def to_json(self) -> str:
        return json.dumps({"vocab": self.vocab, "seq_len": self.seq_len, "clean": self.clean,
                           "stopwords": self.stopwords, "pipeline": self.pipeline, "keras_ids": self.keras_ids})

    @classmethod
    def from_json(cls, text: str) -> "TextEncoder":
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
        pipeline = d.get("pipeline", "suite")  # a tokenizer saved before the pipeline was recorded: the suite's
        if pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {', '.join(PIPELINES)}")
        keras_ids = d.get("keras_ids", False)  # saved before it was recorded: ids from 2
        if not isinstance(keras_ids, bool):
            raise ValueError("keras_ids must be true or false")
        return cls(vocab=vocab, seq_len=seq_len, clean=d["clean"], stopwords=d["stopwords"], pipeline=pipeline,
                   keras_ids=keras_ids)


# --------------------------------------------------------------------------
# The prepared data set
# --------------------------------------------------------------------------


class TokenIdFeatures:
    """scikit-learn transformer: cleaned texts -> padded token-id matrix.

    The earlier study fed these raw ids to its decision tree; the tree family
    keeps them as one choice of features. Fitted on the training texts only.
    Plain attributes only, so skops can store it without pickle.

    Under the study's pipeline the ids are its Keras Tokenizer's (TextEncoder's keras_ids), and texts that carry
    the artist (artist_token, last) become what the study's tree with the artist saw: the lyrics' ids padded at
    the end (its artist notebook's padding='post'), then one column of the artist's number (first seen in
    training first, from 0; -1 for an artist training never saw). A tree saved before either existed keeps
    what it had: ids from 2, the artist token among the words.
    """

    def __init__(self, vocab_size=20000, seq_len=300, pipeline="study"):
        self.vocab_size, self.seq_len, self.pipeline = vocab_size, seq_len, pipeline

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "seq_len": self.seq_len, "pipeline": self.pipeline}

    def set_params(self, **params: Any) -> "TokenIdFeatures":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, texts: Iterable[str], y: Any = None) -> "TokenIdFeatures":
        texts = list(texts)
        study = self.pipeline == "study"
        lyrics, artists = _split_artist(texts) if study else (texts, [None] * len(texts))
        encoder = TextEncoder.fit(lyrics, self.vocab_size, self.seq_len, clean=False, stopwords="none",
                                  pipeline=self.pipeline if study else "suite")
        self.vocab_, self.keras_ids_ = encoder.vocab, encoder.keras_ids
        if any(a is not None for a in artists):
            self.artists_: dict[str, int] = {}
            for a in artists:  # first seen, first numbered: the study's artist_name_mapping
                if a is not None and a not in self.artists_:
                    self.artists_[a] = len(self.artists_)
        return self

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        # pipeline "study" (the earlier study's Tokenizer without an oov_token): words outside the vocabulary
        # are left out; "suite": they are id 1. A tree saved before this attribute existed is a "suite" one.
        texts = list(texts)
        artists_ = getattr(self, "artists_", None)
        if artists_ is None:
            lyrics, artists = texts, []
        else:
            lyrics, artists = _split_artist(texts)
        ids = TextEncoder(vocab=self.vocab_, seq_len=self.seq_len, clean=False, stopwords="none",
                          pipeline=getattr(self, "pipeline", "suite"),
                          keras_ids=getattr(self, "keras_ids_", False)).ids(lyrics)
        if artists_ is None:
            return ids
        column = np.array([[artists_.get(a, -1)] for a in artists], dtype=np.int32).reshape(-1, 1)
        return np.hstack([post_pad(ids), column])

    @property
    def width(self) -> int:
        """Columns of the output: the ids, and the artist's where it has one."""
        return self.seq_len + (getattr(self, "artists_", None) is not None)

    def fit_transform(self, texts: Sequence[str], y: Any = None) -> np.ndarray:
        return self.fit(texts).transform(texts)


ARTIST_PREFIX = "__artist__"


def _split_artist(texts):
    """(the lyrics, the artist token of each text: None where it carries none), the token being the last word."""
    lyrics, artists = [], []
    for t in texts:
        head, _, last = t.rpartition(" ")
        if last.startswith(ARTIST_PREFIX):
            lyrics.append(head)
            artists.append(last)
        else:
            lyrics.append(t)
            artists.append(None)
    return lyrics, artists


def artist_token(artist: str) -> str:
    """The artist as one token of its own, which no cleaned lyric word can equal."""
    return ARTIST_PREFIX + (re.sub(r"\W+", "_", artist.strip().lower()) or "unknown")


def artist_index(train_artists: Sequence[str]) -> dict[str, int]:
    """Artist -> id, from the training split only; id 0 is every unseen artist."""
    return {a: i + 1 for i, a in enumerate(sorted(set(train_artists)))}


def padding_of(with_artist: bool, text_pipeline: str) -> str:
    """Where the padding goes: the earlier study pre-padded its lyrics (pad_sequences' default) and
    post-padded them in its artist notebook; the study's pipeline reproduces both, the suite's pre-pads."""
    return "post" if with_artist and text_pipeline == "study" else "pre"


def post_pad(ids: np.ndarray) -> np.ndarray:
    """Pre-padded id rows -> the same ids first, the padding (0) after, order kept."""
    order = np.argsort(ids == PAD, axis=1, kind="stable")
    return np.take_along_axis(ids, order, axis=1)


def model_inputs(kind: str, ids: Optional[np.ndarray], cleaned_texts: Sequence[str], artists: Optional[Sequence[str]] = None,
                 artists_index: Optional[dict[str, int]] = None, padding: str = "pre") -> dict | list:
    """What a family's model takes, the same at training and at prediction time.

    kind "sequences" (Keras): {"lyrics": ids} plus {"artist": [n, 1] ids}, the padding at the front or
    (padding="post") at the end;
    kind "texts" (scikit-learn): cleaned texts, the artist appended as a token.
    """
    if kind == "texts":
        if artists is None:
            return list(cleaned_texts)
        return [f"{t} {artist_token(a)}" for t, a in zip(cleaned_texts, artists)]
    if ids is None:
        raise ValueError("model_inputs: kind 'sequences' needs the token ids")
    x = {"lyrics": post_pad(ids) if padding == "post" else ids}
    if artists is not None:
        if artists_index is None:
            raise ValueError("model_inputs: artists need the training split's artists_index")
        x["artist"] = np.array([[artists_index.get(a, 0)] for a in artists], dtype=np.int32).reshape(-1, 1)
    return x


def as_model_takes(model: Any, x: Any) -> Any:
    """x, the named inputs model_inputs makes ({"lyrics": ..., "artist": ...}), in the structure the Keras
    model was built on: one input (`keras.Model(words, out)`, a user's family) takes its array, a list of
    inputs the arrays in their order, a dict (the suite's families) the dict. Keras warns at every call whose
    structure differs from the model's (four lines each, several a trial). Anything else is returned as is."""
    if not isinstance(x, dict):
        return x
    try:  # a subclassed model never called has no inputs: Keras matches what it can
        struct, names = model.input, [t.name for t in model.inputs]
    except (AttributeError, ValueError):
        return x
    if isinstance(struct, dict) or not names:
        return x
    if set(names) <= set(x):
        arrays = [x[name] for name in names]
    elif len(names) == len(x) == 1:  # one input, named otherwise: the lyrics
        arrays = list(x.values())
    else:
        return x  # Keras names what it misses
    return arrays if isinstance(struct, (list, tuple)) else arrays[0]
