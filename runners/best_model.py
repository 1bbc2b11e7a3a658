"""Load a family's saved best model and use it on raw inputs.

    from lyrics_cifar_search.analysis.best_model import load_best
    model = load_best("lyrics_lstm")            # reads results/lyrics_lstm/best/
    model.predict(["raw lyrics ...", "..."])    # -> ["Rock", "Pop"]
    model.predict_proba(["raw lyrics ..."])     # -> array [n, n_genres], columns = model.label_names
    load_best("lyrics_lstm", with_artist=True).predict(["..."], artists=["Queen"])

Nothing is refitted: the tokenizer, label names and hyperparameters are
the ones saved with the model. Loading executes no code from the files:
Keras models load with safe_mode=True (a Lambda layer is refused), and
scikit-learn models are skops files whose types are checked before loading.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from lyrics_cifar_search.study_data import images, lyrics
from lyrics_cifar_search.study_data.lyrics import DEFAULT_OPTIONS
from lyrics_cifar_search.study_data.text import (MAX_SEQ_LEN, MAX_VOCAB, TextEncoder, artist_index,
                                                 as_model_takes, model_inputs)
from lyrics_cifar_search.suite_common import UserError, process
from lyrics_cifar_search.suite_common import command as search_command

# skops: the exact types the suite's Optuna families save, by skops node kind,
# module and name, and nothing else: no function, no other class. Trusting whole
# modules is not safe (a FunctionTransformer of numpy.full_like, or a vectoriser
# whose preprocessor is one of scikit-learn's test helpers, runs code).
# study_data's transformer is this project's own, rebuilt from plain attributes.
SKOPS_ALLOWED = {
    ("ObjectNode", "sklearn.pipeline", "Pipeline"),
    ("ObjectNode", "sklearn.feature_extraction.text", "CountVectorizer"),
    ("ObjectNode", "sklearn.feature_extraction.text", "TfidfTransformer"),
    ("ObjectNode", "sklearn.feature_extraction.text", "TfidfVectorizer"),
    ("ObjectNode", "sklearn.linear_model._logistic", "LogisticRegression"),
    ("ObjectNode", "sklearn.tree._classes", "DecisionTreeClassifier"),
    ("TreeNode", "sklearn.tree._tree", "Tree"),
    ("ObjectNode", "lyrics_cifar_search.study_data.text", "TokenIdFeatures"),
    *(("NdArrayNode", "numpy", t) for t in ("ndarray", "int64", "int32", "float64", "float32", "bool_")),
    *(("TypeNode", "numpy", t) for t in ("int64", "int32", "float64", "float32", "bool_")),
    *(("TypeNode", "builtins", t) for t in ("str", "int", "float", "bool")),
    *(("JsonNode", "builtins", t) for t in ("str", "int", "float", "bool", "NoneType")),
    ("DictNode", "builtins", "dict"), ("ListNode", "builtins", "list"), ("TupleNode", "builtins", "tuple"),
}
# Models saved by the suite's 0.1, when its packages were top-level import names, name the transformer's module
# without lyrics_cifar_search: they load with those names pointed at today's modules for the load alone.
BEFORE_ONE_NAME = {"study_data.text": "lyrics_cifar_search.study_data.text",
                   "study_data.lyrics": "lyrics_cifar_search.study_data.lyrics"}  # saved before study_data/text.py
SKOPS_ALLOWED |= {("ObjectNode", old, "TokenIdFeatures") for old in BEFORE_ONE_NAME}


class BestModel:
    def __init__(self, folder: Path, meta: dict, model: Any, encoder: Optional[TextEncoder],
                 artists: Optional[Sequence[str]] = None):
        self.folder, self.meta, self.model, self.encoder = folder, meta, model, encoder
        self.label_names = list(meta["label_names"])
        self.artists_index = artist_index(artists) if artists is not None else None
        self.padding = meta.get("padding") or "pre"  # a model saved before the padding was recorded: pre
        # the test rows' labels and predictions, where the analysis keeps them after score_test (compare.summarize)
        self.test_labels: Optional[np.ndarray] = None
        self.test_predictions: Optional[np.ndarray] = None

    @property
    def family(self) -> str:
        return self.meta["family"]

    def inputs(self, lyrics: Any, artists: Optional[Sequence[str]] = None) -> Any:
        if self.meta["inputs"] == "images":
            x = np.asarray(lyrics, dtype="float32")
            x = x[None] if x.ndim == 3 else x
            return x / 255.0 if x.max() > 1.5 else x  # raw 0-255 pixels are scaled as in training
        lyrics = [lyrics] if isinstance(lyrics, str) else list(lyrics)
        if self.meta.get("with_artist"):
            if artists is None:
                raise UserError(f"{self.family} was trained with the artist: pass artists=[...] beside the lyrics")
            artists = [artists] if isinstance(artists, str) else list(artists)
            if len(artists) != len(lyrics):
                raise UserError(f"{len(lyrics)} lyrics but {len(artists)} artists: pass one artist per song")
        else:
            artists = None
        encoder = self._text_encoder()
        cleaned = [encoder.preprocess(t) for t in lyrics]
        ids = encoder.ids(cleaned) if self.meta["inputs"] == "sequences" else None
        return model_inputs(self.meta["inputs"], ids, cleaned, artists, self.artists_index, self.padding)

    def known_words(self, lyrics: str) -> tuple[int, int]:
        """(words of the cleaned lyrics that the model's vocabulary holds, words in all): how much of an input
        the model can read at all."""
        words = self._text_encoder().preprocess(lyrics).split()
        vocab = set(self._text_encoder().vocab)
        return sum(w in vocab for w in words), len(words)

    def _text_encoder(self) -> TextEncoder:
        """The saved tokenizer a lyrics model carries (an image model has none)."""
        if self.encoder is None:
            raise UserError(f"{self.family} classifies images: it takes pixels, not lyrics")
        return self.encoder

    def predict_proba(self, lyrics: Any, artists: Optional[Sequence[str]] = None) -> np.ndarray:
        return self._probs(self.inputs(lyrics, artists))

    def predict(self, lyrics: Any, artists: Optional[Sequence[str]] = None) -> list[str]:
        return [self.label_names[i] for i in self.predict_proba(lyrics, artists).argmax(axis=1)]

    def _probs(self, x):
        if self.meta["engine"] == "optuna":
            probs = self.model.predict_proba(x)
            full = np.zeros((probs.shape[0], len(self.label_names)))
            full[:, self.model.classes_] = probs
            return full
        return np.asarray(self.model.predict(as_model_takes(self.model, x), batch_size=256, verbose=0))

    def test_split(self, results_dir: str | Path) -> tuple[Any, np.ndarray]:
        """The held-out test split this model's search set aside, rebuilt from the
        recorded data, options and seed (read from the cache, nothing refitted).
        Returns (model inputs, integer labels)."""
        d = self.meta["data"]
        cache_dir = Path(results_dir) / "_cache"
        if self.meta["inputs"] == "images":
            imgs = images.load_images(d["arg"], cache_dir=cache_dir, per_class=d.get("images_per_class"),
                                      announce_demo=False)
            block = images.make_block(imgs, self.meta["blocks"]["block"], seed=self.meta["blocks"]["seed"])
            if block.class_names != self.label_names:
                raise UserError(f"{self.family}: the image data changed since the search (other classes): "
                                "re-run the search")
            return block.x_test, block.y_test
        data = lyrics.load(d["arg"], d.get("test_data"), cache_dir=cache_dir, columns=d.get("columns"),
                           # a search saved before the text pipeline was recorded used the suite's
                           announce_demo=False, **{"text_pipeline": "suite", **d["options"]})
        if data.fingerprint != d["fingerprint"]:
            raise UserError(f"{self.family}: the data file changed since the search: re-run the search")
        t = data.test
        x = model_inputs(self.meta["inputs"], t.x, t.texts, t.artists if self.meta.get("with_artist") else None,
                         self.artists_index, self.padding)
        return x, t.y

    def score_test(self, results_dir: str | Path) -> tuple[dict, np.ndarray, Optional[np.ndarray]]:
        """Test-set metrics of the saved model; also returns labels and predictions."""
        return self.score(*self.test_split(results_dir))

    @property
    def reconstructs_input(self) -> bool:
        """An autoencoder (its family's targets are its images): scored by reconstruction error."""
        return self.meta.get("targets") == "images"

    def score(self, x: Any, y: np.ndarray) -> tuple[dict, np.ndarray, Optional[np.ndarray]]:
        """Metrics of the model on inputs x with labels y, and (y, predictions); an autoencoder's
        reconstruction error (predictions None)."""
        if self.reconstructs_input:
            recon = np.asarray(self.model.predict(x, batch_size=256, verbose=0))
            return {"test_reconstruction_mse": float(np.mean((recon - x) ** 2))}, y, None
        from sklearn.metrics import accuracy_score, f1_score  # scikit-learn: only where its models are used
        pred = self._probs(x).argmax(axis=1)
        labels = list(range(len(self.label_names)))
        return ({"test_accuracy": float(accuracy_score(y, pred)),
                 "test_macro_f1": float(f1_score(y, pred, average="macro", labels=labels, zero_division=0))},
                y, pred)


def check_meta(meta: dict) -> dict:
    """A best model's meta.json, its values checked before anything is built from them (ValueError if not)."""

    def need(ok, what):
        if not ok:
            raise ValueError(f"meta.json: {what}")
    need(isinstance(meta, dict), "not an object")
    need(meta.get("engine") in ("keras_tuner", "optuna"), "engine must be keras_tuner or optuna")
    need(meta.get("inputs") in ("sequences", "texts", "images"), "inputs must be sequences, texts or images")
    need(meta.get("model_file") in ("model.keras", "model.skops"), "model_file must be model.keras or model.skops")
    names = meta.get("label_names")
    need(isinstance(names, list) and 0 < len(names) <= 100_000 and all(isinstance(n, str) for n in names),
         "label_names must list the class names")
    need(isinstance(meta.get("with_artist", False), bool), "with_artist must be true or false")
    need(isinstance(meta.get("metrics", {}), dict) and isinstance(meta.get("hyperparameters", {}), dict),
         "metrics and hyperparameters must be objects")
    data = meta.get("data", {})
    need(isinstance(data, dict), "data must be an object")
    options = data.get("options", {})
    need(isinstance(options, dict) and set(options) <= set(DEFAULT_OPTIONS), "data.options holds unknown options")
    for key, low, high in (("vocab_size", 3, MAX_VOCAB), ("seq_len", 1, MAX_SEQ_LEN)):
        if key in options:
            v = options[key]
            need(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high, f"{key} out of range")
    for key in ("arg", "test_data", "embeddings"):
        need(data.get(key) is None or isinstance(data.get(key), str), f"data.{key} must be a path")
    if meta["inputs"] == "images":
        blocks = meta.get("blocks")
        need(isinstance(blocks, dict) and blocks.get("block") in (1, 2) and isinstance(blocks.get("seed"), int),
             "blocks must name block 1 or 2 and its seed")
        per_class = data.get("images_per_class")
        need(per_class is None or (isinstance(per_class, int) and per_class > 0), "images_per_class")
    return meta


def load_best(family: str | Path, results_dir: str | Path = "results", with_artist: bool = False, *,
              trial: int | None = None, rank: int | None = None, storage: str | None = None,
              artifact_store: str | None = None, study: str | None = None) -> BestModel:
    """The best model of a search, ready to predict: `family` names it (results_dir/<family>/best/, or
    <family>_artist/ with the artist), or is the path of a best/ folder itself. Works from any directory.

    Any kept trial's model (runners/model_store.py): trial=N (its id in trials.csv), or rank=k (1: the best; a
    Pareto search's by its first objective, ties by the next), from the search's record in results_dir/optuna.db
    or at storage= (a shared --storage URL: then from any folder, whichever host trained it), its models in the
    store the search recorded or artifact_store=; study= names the study where several of a family share one."""
    if trial is not None or rank is not None or storage is not None:
        return _load_kept(str(family), Path(results_dir).expanduser(), with_artist, trial=trial, rank=rank,
                          storage=storage, artifact_store=artifact_store, study=study)
    given = Path(family).expanduser()
    if given.is_dir() and (given / "meta.json").exists():  # a best/ folder
        folder, family = given.resolve(), given.resolve().parent.name
        command = f"{search_command('search')} {family.removesuffix('_artist')}" + \
            (" --with-artist" if family.endswith("_artist") else "")
    else:
        family = str(family)
        folder = Path(results_dir).expanduser().resolve() / (family + ("_artist" if with_artist else "")) / "best"
        command = f"{search_command('search')} {family}" + (" --with-artist" if with_artist else "") + \
            (f" --results-dir {Path(results_dir)}" if Path(results_dir) != Path("results") else "")
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise UserError(f"no saved best model in {folder}: run `{command}` first")
    try:
        meta = check_meta(json.loads(meta_path.read_text()))
        encoder = TextEncoder.from_json((folder / "tokenizer.json").read_text()) if meta["inputs"] != "images" else None
        artists = json.loads((folder / "artists.json").read_text()) if meta.get("with_artist") else None
        if artists is not None and not (isinstance(artists, list) and all(isinstance(a, str) for a in artists)):
            raise ValueError("artists.json must list artist names")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{folder} is damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                        "re-run the search to save it again") from None
    model_path = folder / meta["model_file"]
    if not model_path.exists():
        raise UserError(f"{model_path} is missing; re-run `{command}` to save it again")
    if model_path.suffix == ".skops":
        model = _load_skops(model_path)
        from lyrics_cifar_search.runners import model_checks  # scikit-learn: imported only for its models
        try:  # types were checked before loading; now the values that compiled code will index with
            model_checks.check_pipeline(model, len(meta["label_names"]))
        except ValueError as e:
            raise UserError(f"{model_path} is not a model this suite saved ({e}); refusing to use it") from None
    else:
        model = _load_keras(model_path)
        from lyrics_cifar_search.runners import model_checks  # the values a Keras model is used with
        try:
            model_checks.check_keras_model(model, meta, encoder)
        except ValueError as e:
            raise UserError(f"{folder} does not hold a model this suite saved ({e}); refusing to use it") from None
    return BestModel(folder, meta, model, encoder, artists)


def _load_kept(family, results_dir, with_artist, *, trial, rank, storage, artifact_store, study):
    """load_best's trial=, rank=, storage=: best/ or baseline/ where it is that trial (and the record is this
    results folder's), else the kept model from the artifact store, checked as any best/ is."""
    for name, value in (("trial", trial), ("rank", rank)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < (name == "rank")):
            raise UserError(f"{name}={value!r}: give a whole number" + (" from 1" if name == "rank" else ""))
    if trial is not None and rank is not None:
        raise UserError("give trial=N or rank=k, not both")
    folder_name = family + ("_artist" if with_artist else "")
    if storage is None and not (results_dir / "optuna.db").exists():
        raise UserError(f"no search record in {results_dir} (optuna.db): give results_dir=, or storage= the "
                        "search's --storage URL")
    from lyrics_cifar_search.runners import model_store, record  # Optuna: only for a kept trial's model
    url = storage or record.storage_url(results_dir)
    study = model_store.find_study(url, folder_name, study)
    chosen, k = model_store.chosen_trial(study, trial, rank)
    trial_id = record.trial_id(chosen)
    if storage is None:  # best/ or baseline/ holds it already: no store needed (the defaults keep no other)
        for kept in ("best", "baseline"):
            meta_path = results_dir / folder_name / kept / "meta.json"
            try:
                saved = json.loads(meta_path.read_text()).get("trial_id") if meta_path.exists() else None
            except (OSError, ValueError, AttributeError):
                saved = None
            if saved == trial_id:
                return load_best(str(meta_path.parent))
    folder = model_store.fetch_kept(study, chosen, k, results_dir, artifact_store=artifact_store)
    model = load_best(str(folder))
    if model.meta.get("trial_id") != trial_id:  # the claim names another trial's model: swapped, refused
        raise UserError(f"the model kept for trial {trial_id} says it is trial {model.meta.get('trial_id')}'s; "
                        "refusing to use it")
    return model


def _load_keras(path):
    if "keras" not in sys.modules:  # the framework starts here: quiet, as a search is (suite_common/process.py)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        process.quiet_frameworks()
    import keras  # Keras starts only when a Keras model is built or loaded

    # register the metrics the models were compiled with, and the layers they use
    importlib.import_module("lyrics_cifar_search.search_spaces._metrics")
    importlib.import_module("lyrics_cifar_search.search_spaces._layers")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except ValueError as e:
        if "safe_mode" in str(e) or "Lambda" in str(e):
            raise UserError(f"{path} holds code (a Lambda layer) that safe mode refuses to run; "
                            "it was not made by this suite: do not load it") from None
        raise UserError(f"{path} is not a loadable Keras model ({str(e).splitlines()[0]})") from None
    except Exception as e:
        raise UserError(f"{path} is not a loadable Keras model ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None


def skops_types(path: str | Path) -> set[tuple[str, str, str]]:
    """Every (node kind, module, name) a skops file would rebuild, read from its schema without loading it."""
    with zipfile.ZipFile(path) as z:
        schema = json.loads(z.read("schema.json"))
    found: set[tuple[str, str, str]] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__module__" in node or "__loader__" in node:
                found.add((str(node.get("__loader__")), str(node.get("__module__")), str(node.get("__class__"))))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@contextlib.contextmanager
def _modules_named_as_before():
    """sys.modules answers 0.1's module names with today's modules while a skops file loads, then forgets them:
    no top-level name of the suite's stays behind to shadow a user's own module."""
    added = [old for old in BEFORE_ONE_NAME if old not in sys.modules]
    for old in added:
        sys.modules[old] = importlib.import_module(BEFORE_ONE_NAME[old])
    try:
        yield
    finally:
        for old in added:
            del sys.modules[old]


def _load_skops(path):
    import skops.io as sio  # skops: only to save or load a scikit-learn model
    try:
        refused = sorted(skops_types(path) - SKOPS_ALLOWED)
        if refused:
            raise UserError(f"{path} holds types that the suite's models never contain "
                            f"({', '.join(f'{m}.{c} ({k})' for k, m, c in refused[:5])}); refusing to load it")
        from lyrics_cifar_search.runners import model_checks  # the shapes its arrays declare, before any is read
        try:
            model_checks.check_archive_arrays(path)
        except ValueError as e:
            raise UserError(f"{path} is not a model this suite saved ({e}); refusing to load it") from None
        with _modules_named_as_before():
            return sio.load(path, trusted=sio.get_untrusted_types(file=path))
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{path} is not a loadable skops model ({type(e).__name__})") from None
