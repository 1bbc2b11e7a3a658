"""The values inside a loaded scikit-learn model, checked before anything uses it.

skops checks the types a file rebuilds (best_model.SKOPS_ALLOWED), not the
values: a decision tree whose child indices point past its last node, or
whose split feature is 2·10⁹, passes that check and then makes scikit-learn's
compiled code read outside its arrays (a segmentation fault). Every array the
suite's scikit-learn families save is checked here against what a fitted
estimator of that type always holds; anything else raises ValueError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from lyrics_cifar_search.study_data.text import MAX_SEQ_LEN, MAX_VOCAB, TokenIdFeatures

if TYPE_CHECKING:
    from lyrics_cifar_search.study_data.text import TextEncoder


def check_pipeline(model: Any, n_labels: int) -> None:
    """A saved Pipeline of the suite: its steps' widths chain, and its classes index the n_labels names."""
    _need(isinstance(model, Pipeline) and len(model.steps) >= 2, "not a Pipeline of features and a classifier")
    width = None
    for _, step in model.steps[:-1]:
        width = _check_features(step, width)
    _check_classifier(model.steps[-1][1], width, n_labels)


def _check_features(step, width):
    """The step's output width, once its arrays are checked."""
    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            width = _check_features(inner, width)
        return width
    if isinstance(step, TokenIdFeatures):
        for name, limit in (("vocab_size", MAX_VOCAB), ("seq_len", MAX_SEQ_LEN)):
            value: Any = getattr(step, name, None)
            _need(_whole(value) and 1 <= value <= limit, f"TokenIdFeatures.{name} must be 1 to {limit}")
        vocab: Any = getattr(step, "vocab_", None)  # (a list here, a dict of a vectorizer below)
        _need(isinstance(vocab, list) and len(vocab) <= MAX_VOCAB and all(isinstance(w, str) for w in vocab),
              "TokenIdFeatures.vocab_ must be a list of words")
        _need(getattr(step, "pipeline", "suite") in ("study", "suite"), "TokenIdFeatures.pipeline must be study "
              "or suite")
        _need(isinstance(getattr(step, "keras_ids_", False), bool), "TokenIdFeatures.keras_ids_ must be true or false")
        artists = getattr(step, "artists_", None)
        _need(artists is None or (isinstance(artists, dict) and all(
            isinstance(k, str) and _whole(v) and 0 <= v < len(artists) for k, v in artists.items())),
              "TokenIdFeatures.artists_ must number the artists 0..n-1")
        return step.width
    if isinstance(step, (CountVectorizer, TfidfVectorizer)):
        _check_vectorizer_settings(step)
        # fitted: vocabulary_; given a fixed list (TF-IDF's refined step), it builds vocabulary_ when used
        vocab = getattr(step, "vocabulary_", None) if hasattr(step, "vocabulary_") else step.vocabulary
        if isinstance(vocab, list):
            _need(len(set(vocab)) == len(vocab), "the vocabulary lists a word twice")
            vocab = {w: i for i, w in enumerate(vocab)}
        _need(isinstance(vocab, dict) and vocab and all(isinstance(k, str) for k in vocab), "no vocabulary of words")
        ids = np.array(list(vocab.values()))
        _need(ids.dtype.kind in "iu" and np.array_equal(np.sort(ids), np.arange(len(vocab))),
              "vocabulary_ ids must be 0..n-1, each once")
        if isinstance(step, TfidfVectorizer):
            _idf(step, len(vocab))
        return len(vocab)
    if isinstance(step, TfidfTransformer):
        _need(width is not None, "a TfidfTransformer with nothing before it")
        _idf(step, width)
        return width
    raise ValueError(f"an unexpected step {type(step).__name__}")


# What the suite's vectorizers are made with (search_spaces/lyrics_tfidf_logreg.py, lyrics_decision_tree.py):
# scikit-learn's word analyzer and token pattern, n-grams up to 3. Anything else is not the suite's, and a
# hostile value costs memory (ngram_range (1, 100000)) or time (a token pattern that backtracks) at predict.
SUITE_TOKEN_PATTERN = CountVectorizer().token_pattern
MAX_NGRAM = 3


def _check_vectorizer_settings(step):
    low, high = (tuple(step.ngram_range) + (None, None))[:2] if isinstance(step.ngram_range, (tuple, list)) \
        else (None, None)
    _need(_whole(low) and _whole(high) and 1 <= low <= high <= MAX_NGRAM,
          f"ngram_range must be (1..{MAX_NGRAM}, 1..{MAX_NGRAM}), as the suite searches it")
    _need(step.analyzer == "word" and step.token_pattern == SUITE_TOKEN_PATTERN and step.tokenizer is None
          and step.preprocessor is None, "the vectorizer's analyzer and token pattern are not the suite's")


def _idf(step, width):
    idf = _array(step, "idf_", float)
    _need(idf.shape == (width,) and np.isfinite(idf).all(), f"idf_ must be {width} finite numbers")


def _check_classifier(clf, width, n_labels):
    _need(width is not None, "a classifier with no features before it")
    classes = _array(clf, "classes_", int)
    _need(classes.ndim == 1 and len(classes) >= 2 and len(set(classes.tolist())) == len(classes)
          and classes.min() >= 0 and classes.max() < n_labels, f"classes_ must be distinct ids below {n_labels}")
    if isinstance(clf, LogisticRegression):
        rows = 1 if len(classes) == 2 else len(classes)
        coef, intercept = _array(clf, "coef_", float), _array(clf, "intercept_", float)
        _need(coef.shape == (rows, width) and intercept.shape == (rows,), f"coef_ must be {rows} x {width}")
        _need(np.isfinite(coef).all() and np.isfinite(intercept).all(), "coef_ and intercept_ must be finite")
    elif isinstance(clf, DecisionTreeClassifier):
        _need(getattr(clf, "n_features_in_", None) == width and getattr(clf, "n_outputs_", None) == 1,
              f"the tree must read {width} features and give one output")
        _need(_whole(getattr(clf, "n_classes_", None)) and clf.n_classes_ == len(classes), "n_classes_ != classes_")
        _check_tree(clf.tree_, width, len(classes))
    else:
        raise ValueError(f"an unexpected classifier {type(clf).__name__}")


def _check_tree(tree, width, n_classes):
    """Every node: children both -1 (a leaf) or both later nodes (so every path ends), a split feature below
    the input width, a finite threshold; one row of class values per node."""
    n = tree.node_count
    _need(_whole(n) and n >= 1 and tree.n_features == width and tree.n_outputs == 1
          and list(tree.n_classes) == [n_classes], "the tree's counts do not match the classifier's")
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature, threshold = np.asarray(tree.feature), np.asarray(tree.threshold)
    _need(all(len(a) == n for a in (left, right, feature, threshold)), "node arrays of unequal length")
    leaf = left == -1
    nodes = np.arange(n)
    _need(np.array_equal(leaf, right == -1), "a node with one child")
    inner = ~leaf
    _need(((left[inner] > nodes[inner]) & (left[inner] < n) & (right[inner] > nodes[inner])
           & (right[inner] < n)).all(), "child indices out of range or pointing back")
    _need(((feature[inner] >= 0) & (feature[inner] < width)).all() and np.isfinite(threshold[inner]).all(),
          f"split features must be below {width} and thresholds finite")
    value = np.asarray(tree.value)
    _need(value.shape == (n, 1, n_classes) and np.isfinite(value).all(), "class values of the wrong shape")


def _array(obj, name, kind):
    value = getattr(obj, name, None)
    _need(isinstance(value, np.ndarray) and value.dtype.kind in ("iu" if kind is int else "f"),
          f"{type(obj).__name__}.{name} must be an array of {kind.__name__}s")
    return value


def _whole(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _need(condition, problem):
    if not condition:
        raise ValueError(problem)


# The largest array the suite's scikit-learn models hold is far below this (a tree's nodes, a logistic
# regression's classes x 50,000 terms); a declared shape beyond it is refused before it is read.
MAX_ARRAY_ELEMENTS = 5_000_000


def check_archive_arrays(path: str | Path) -> None:
    """Every NumPy array in a skops archive, by the shape its header declares, before any is read: at most
    MAX_ARRAY_ELEMENTS each (ValueError if not)."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if not name.endswith(".npy"):
                continue
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, _ = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, _ = np.lib.format.read_array_header_2_0(f)
            _need(int(np.prod(shape, dtype=np.float64)) <= MAX_ARRAY_ELEMENTS,
                  f"an array of shape {shape} ({name}), larger than any the suite saves")


def check_keras_model(model: Any, meta: dict[str, Any], encoder: Optional[TextEncoder]) -> None:
    """A Keras best model against its meta.json and tokenizer: one output per label name (a classifier), and
    a word embedding with a row for every id the tokenizer can give (ValueError if not)."""
    shape: tuple = model.outputs[0].shape if model.outputs else ()
    if len(shape) == 2:  # a classifier (the autoencoder gives images)
        _need(shape[-1] == len(meta["label_names"]),
              f"the model has {shape[-1]} outputs for {len(meta['label_names'])} label names")
    if encoder is not None:
        embeddings = [layer for layer in model.layers if type(layer).__name__ == "Embedding"]
        words = [layer for layer in embeddings if layer.name == "word_embedding"] or \
            [layer for layer in embeddings if "artist" not in layer.name]  # a family of your own: its names
        if words and encoder.vocab_size > words[0].input_dim:
            raise ValueError(f"the tokenizer gives {encoder.vocab_size} word ids; the model's embedding has "
                             f"{words[0].input_dim} rows")

