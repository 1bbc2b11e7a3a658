"""The engine interface: `Engine`, a Protocol each engine module satisfies (the type checker checks both, below).

    search(family, prepared, out_dir, config) -> the trials.csv rows   run or resume the search (workers too)
    baseline(family, prepared) -> params                              trial 0's values: the earlier study's
    train_one(family, prepared, params, seed, epochs) -> model        one configuration, trained as a trial is

`engine(family)` is the family's: runners/keras_search/ (Keras Tuner) or runners/optuna_engine.py (Optuna).
Both write the same trials.csv and best/; `run` adds the family's comparison tables. The CLI, retrain
(`compare.py --repeats`) and the benches go through these functions.

One trial in each engine, from proposal to its row in trials.csv; a function named for both is one piece:

    step         Keras engine (keras_search/)                    Optuna engine (optuna_engine.py)
    propose      StudyOracle.populate_space: study.ask()          study.optimize asks; family.suggest(trial)
    number       the study trial's number is the Keras trial id   the study trial's number
                 (Keras Tuner's own oracles: recorded as they end; record.trial_id reads either)
    train        trial.train (Keras fit, epoch reports, pruning)  optuna_trial.train (features, classifier)
    leave        on_trial_end: trial_end.model_meta, .stage       run_one: trial_end.model_meta, .stage
    record       the oracle tells the study (end_trial)           Optuna tells the study (objective returned)
    settle       trial_end.settle, then trial_end.write_record    after_trial: the same two
    stop         failures in a row (trials_table.failed_in_a_row, trial_end.too_many_failures), Ctrl-C and the
                 time budget (search_progress.Stop), --max-trials (an attempt run again counts once)
    run again    an attempt cut short: record.cut_short; Keras Tuner's retry queue runs its values as a new
                 trial (optuna_oracle), Optuna's retry callback (optuna_queue.run_again)
    resume       search_progress.resuming; the summary after the search is search.py's, the same for both

What stays each engine's own: who asks for the next trial (Keras Tuner's tuner loop and oracle, Optuna's
optimize), Keras Tuner's state folder (keras_tuner/, which a Keras search resumes from), and the Optuna
engine's feature cache.
"""

from __future__ import annotations

import dataclasses
import logging
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol, TypeVar, cast

from lyrics_cifar_search.runners import trials_table
from lyrics_cifar_search.runners.search_progress import Stop
from lyrics_cifar_search.suite_common import atomic

logger = logging.getLogger(__name__)

if TYPE_CHECKING:  # the types of the engine interface, for readers and checkers only
    from lyrics_cifar_search.runners.prepare import Prepared
    from lyrics_cifar_search.runners.shaping import Shape
    from lyrics_cifar_search.search_spaces import Family

# Who proposes the trials: "optuna", a study with a sampler (and for Keras a pruner: runners/keras_search/
# optuna_oracle.py), or for a Keras family Keras Tuner's own oracles. The first of each is the default.
TUNERS = {"keras_tuner": ("optuna", "random", "bayesian", "hyperband"), "optuna": ("optuna",)}
SAMPLERS = ("tpe", "tpe-prior", "random", "nsga2")
PRUNERS = ("median", "successive-halving", "hyperband", "none")


@dataclass
class SearchConfig:
    """How a search runs (the command line's search flags)."""
    max_trials: int = 10
    epochs: Optional[int] = None  # Keras: max epochs per trial; None: the family's
    tuner: Optional[str] = None  # None: the engine's first in TUNERS
    seed: int = 42
    stop: Stop = field(default_factory=Stop)  # Ctrl-C and --time-budget: when the search stops
    time_budget: Optional[float] = None  # --time-budget in seconds: the search policy sizes its start-up by it
    baseline: bool = True  # False (--no-baseline): no fixed first trials; the sampler proposes from trial 0
    shape: Optional[Shape] = None  # --set, --range, --choices, --enqueue
    tensorboard: Optional[str] = None
    workers: int = 1
    storage: Optional[str] = None  # Optuna: a shared database URL
    worker: bool = False  # this process is one of the workers another one started
    argv: Optional[list] = None  # the command line, for starting workers (default sys.argv[1:])
    verbose: bool = False  # a line per epoch of every Keras trial
    sampler: str = "tpe"  # --tuner optuna: the study's sampler
    pruner: str = "median"  # --tuner optuna (Keras): Optuna's pruner, or none
    keep_models: int = 1  # --keep-models K: the K best trials' models kept in the artifact store (and the front's)
    artifact_store: Optional[str] = None  # --artifact-store: a folder or s3://bucket; None: results/artifacts/


FamilyT = TypeVar("FamilyT", bound="Family", contravariant=True)  # an engine takes its own kind of family


class Engine(Protocol[FamilyT]):
    """What an engine module provides (runners/keras_search/__init__.py takes KerasFamily, runners/optuna_engine.py
    OptunaFamily)."""

    def search(self, family: FamilyT, prepared: Prepared, out_dir: Path, config: SearchConfig) -> list[dict]:
        """Run or resume the search into out_dir (workers too); trials.csv's rows ([] in a worker)."""

    def baseline(self, family: FamilyT, prepared: Prepared) -> dict[str, Any]:
        """Trial 0's values: every hyperparameter at its default, the earlier study's."""

    def train_one(self, family: FamilyT, prepared: Prepared, params: dict[str, Any], seed: int,
                  epochs: Optional[int] = None) -> Any:
        """One configuration trained as a trial is; the model (a Keras model, or a fitted pipeline)."""


ENGINES = {"keras_tuner": "lyrics_cifar_search.runners.keras_search",
           "optuna": "lyrics_cifar_search.runners.optuna_engine"}


def engine(family: Family) -> Engine[Any]:
    """The family's engine module (imported on first use: Keras Tuner and Keras, or Optuna and scikit-learn)."""
    return cast("Engine[Any]", importlib.import_module(ENGINES[family.engine]))


def run(family: Family, prepared: Prepared, out_dir: str | Path, config: SearchConfig) -> list[dict]:
    """Run (or resume) the family's search into out_dir; returns the trials.csv rows ([] in a worker)."""
    config = dataclasses.replace(config, tuner=config.tuner or TUNERS[family.engine][0])
    out_dir = Path(out_dir)
    rows = engine(family).search(family, prepared, out_dir, config)
    if rows:  # not in a worker: the process that started it writes the tables
        write_comparison_tables(family, prepared, out_dir)
    return rows


def write_comparison_tables(family: Family, prepared: Prepared, out_dir: str | Path) -> None:
    """The family's own tables (e.g. best score per activation, loss, skip setting) beside trials.csv."""
    if family.comparison_tables is None or not (Path(out_dir) / "trials.csv").exists():
        return
    import pandas as pd  # pandas: only where a table is read
    trials = pd.read_csv(Path(out_dir) / "trials.csv")
    for name, table in family.comparison_tables(trials, *trials_table.objective_of(family, prepared.meta)).items():
        atomic.write_text(Path(out_dir) / f"{name}.csv", table.to_csv(index=False))
        logger.info(f"{name}:\n{table.to_string(index=False)}")


def study_settings(family: Family, config: SearchConfig) -> dict:
    """The search's own settings in its study's identity, as its engine describes the study (record.describe)."""
    if family.engine == "keras_tuner":
        return {"tuner": config.tuner, **({"sampler": config.sampler, "pruner": config.pruner}
                                          if config.tuner == "optuna" else {}), "baseline": config.baseline}
    return {"sampler": config.sampler, "baseline": config.baseline}


if TYPE_CHECKING:  # the type checker checks that both engine modules satisfy Engine
    from lyrics_cifar_search.runners import keras_search, optuna_engine
    from lyrics_cifar_search.search_spaces import KerasFamily, OptunaFamily
    _keras_tuner_engine: Engine[KerasFamily] = keras_search
    _optuna_engine: Engine[OptunaFamily] = optuna_engine
