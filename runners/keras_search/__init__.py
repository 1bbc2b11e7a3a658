"""Keras Tuner engine: a family's HyperModel searched by a Keras Tuner oracle.

    optuna_oracle.py  the default oracle: an Optuna study proposes, prunes and records
    oracles.py      Keras Tuner's own oracles; trial 0 the study's configuration; each trial into the study
    trial.py        one trial: build, train with the suite's callbacks, score on validation
    tuner.py        SuiteTuner: trials.csv, histories and best/ as trials end
    accelerate.py   fused JAX steps and CUDA-graph PyTorch steps on a GPU
    distributed.py  the chief and its workers (gRPC), imported only when workers run

The oracle (the Optuna study's by default; Keras Tuner's random, bayesian or
hyperband with --tuner) proposes hyperparameters; Keras Tuner keeps its state
under results/<family>/keras_tuner/, which is what makes a re-run resume, and
every trial is recorded in the search's study (runners/record.py).
`SuiteTuner.run_trial` trains one model and returns its validation metrics;
`on_trial_end` keeps the best model and rewrites trials.csv from the study.

Choices, noted:
- The first trial of a new search runs every hyperparameter's default (the
  earlier study's model): `BaselineFirst.populate_space`, Keras Tuner's
  documented override for an oracle, answers the first request with them.
- Keras Tuner's own per-epoch checkpoints are not written: the suite saves
  only the best model, after its trial, in `.keras` format.
- Hyperband trains each trial from scratch for its `tuner/epochs` budget
  instead of reloading the checkpoint of the trial it continues.
- Early stopping on validation loss (patience 5) restores the best epoch's
  weights, so the scores and the saved model are those of that epoch.

Several workers use Keras Tuner's own chief/worker mode (distributed.serve): the
chief holds the oracle and writes trials.csv; each worker asks it for
trials, trains them, and promotes its model to best/ if better. All of them
share the results folder.
"""

from __future__ import annotations

import logging
import dataclasses
import gc
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import keras
import keras_tuner as kt

from lyrics_cifar_search.runners import (compat, model_store, record, search_progress, shaping, trial_end,
                                        trials_table, workers)
from lyrics_cifar_search.runners.keras_search import errors
from lyrics_cifar_search.runners.keras_search.optuna_oracle import StudyOracle
from lyrics_cifar_search.runners.keras_search.oracles import (BayesianOracle, HyperbandOracle, RandomOracle,
                                                              default_values)
from lyrics_cifar_search.runners.keras_search.trial import BudgetReached, TooManyFailures, train
from lyrics_cifar_search.runners.keras_search.tuner import SuiteTuner
from lyrics_cifar_search.runners.search_progress import Stop
from lyrics_cifar_search.suite_common import UserError, warn

if TYPE_CHECKING:  # the engine interface's types (runners/engines.py, Engine)
    from lyrics_cifar_search.runners.engines import SearchConfig
    from lyrics_cifar_search.runners.prepare import Prepared
    from lyrics_cifar_search.search_spaces import KerasFamily

logger = logging.getLogger(__name__)


def make_oracle(tuner: Optional[str], max_trials: Optional[int], epochs: Optional[int], seed: int,
                objective: tuple[str, str] = trials_table.OBJECTIVE, *, study: tuple[str, str], sampler: str = "tpe",
                pruner: str = "median", first_trials: Sequence[dict] = ({},), parallel: bool = False,
                time_budget: Optional[float] = None, hyperparameters: Optional[kt.HyperParameters] = None,
                objectives: Optional[Sequence[tuple[str, str]]] = None) -> kt.Oracle:
    """"optuna": the Optuna-backed oracle, or Keras Tuner's own (random, bayesian, hyperband); every one records
    its trials in the study at study=(storage URL, study name). first_trials: the family's fixed first trials
    (the baseline first); parallel: workers run trials at once (TPE's constant liar); hyperparameters: the space
    the oracle starts from (the shaped hyperparameters: runners/shaping.py), as Keras Tuner's oracles take it;
    objectives: a Pareto search's [(metric, direction), ...] (the study oracle only), the first `objective`."""
    listed = [tuple(o) for o in objectives] if objectives else [tuple(objective)]
    kt_objective = kt.Objective(*listed[0])  # Keras Tuner's own: the first (a Pareto search's others: the study's)
    if tuner == "optuna":
        oracle = StudyOracle(kt_objective, max_trials, seed, storage_url=study[0], study_name=study[1], epochs=epochs,
                             sampler=sampler, pruner=pruner, parallel=parallel, first_trials=first_trials,
                             time_budget=time_budget, hyperparameters=hyperparameters, objectives=listed)
    elif tuner == "random":
        oracle = RandomOracle(objective=kt_objective, max_trials=max_trials, seed=seed, hyperparameters=hyperparameters)
    elif tuner == "bayesian":
        oracle = BayesianOracle(objective=kt_objective, max_trials=max_trials, seed=seed,
                                hyperparameters=hyperparameters)
    elif tuner == "hyperband":
        # hyperband_iterations=None: brackets repeat until --max-trials, which stops the search
        oracle = HyperbandOracle(objective=kt_objective, max_epochs=epochs, factor=3, hyperband_iterations=None,
                                 seed=seed, hyperparameters=hyperparameters)
    else:
        raise ValueError(tuner)
    oracle.record_at = study
    oracle.first_trials = tuple(first_trials)
    # Hyperband has no max_trials of its own; the oracle honours the attribute.
    oracle.max_trials = max_trials
    # Failures in a row are counted by the suite (trials_table.failed_in_a_row), the same for every engine
    oracle.max_consecutive_failed_trials = 10 ** 9
    return oracle


def trials_begun(out_dir: str | Path) -> int:
    """Trials that a previous run of this search began (Keras Tuner's trial files; for the resume message)."""
    trial_files = list((Path(out_dir) / "keras_tuner").glob("trial_*/trial.json"))
    return len(trial_files)


def _settings(tuner, sampler, pruner, baseline=True):
    """The search's own settings in its study's identity (record.describe; engines.study_settings, the same)."""
    return {"tuner": tuner, **({"sampler": sampler, "pruner": pruner} if tuner == "optuna" else {}),
            "baseline": baseline}


def start_engine() -> None:
    """Before the first trial: the library patches (runners/compat.py, with a line if a version is outside
    what they were written for), and what exists now (modules, data) exempted from garbage collection:
    clear_session collects garbage before every trial, to free the last model; with the frameworks'
    millions of objects frozen, that pass is short (the figures: bench/README.md)."""
    for line in compat.check_versions():
        warn(f"warning: {line}")
    compat.apply(write_failed=errors.WriteFailed)
    gc.collect()
    gc.freeze()


def _check_buildable(family, prepared):
    """The baseline model builds from these flags and data (say so in one line if not, e.g. a sequence
    too short for valid convolutions), before any state is read or written."""
    hypermodel = family.hypermodel(prepared.spec)
    try:
        hypermodel.build(kt.HyperParameters())
    except Exception as e:  # noqa: BLE001 - any build error is the flags' or the data's (or a family's own code)
        raise UserError(f"{family.name} cannot build its model from these flags and data ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}; {errors.where(family, e)})") from None
    finally:
        keras.backend.clear_session()


def _make_tuner(family, prepared, out_dir, *, max_trials, epochs, tuner, seed, tensorboard, progress, stop=None,
                verbose=False, sampler="tpe", pruner="median", parallel=False, time_budget=None,
                hyperparameters=None, models=None):
    _check_buildable(family, prepared)
    try:
        objectives = trials_table.objectives_of(family, prepared.meta)
        study = (record.storage_url(Path(out_dir).parent), record.study_name(out_dir))  # the search's record
        oracle = make_oracle(tuner, max_trials, epochs, seed, objectives[0], study=study, sampler=sampler,
                             pruner=pruner, first_trials=family.first_trials, parallel=parallel,
                             time_budget=time_budget, hyperparameters=hyperparameters, objectives=objectives)
        oracle.identity = (prepared.meta, _settings(tuner, sampler, pruner, bool(family.first_trials)))
        return SuiteTuner(oracle, family.hypermodel(prepared.spec), family=family, prepared=prepared, out_dir=out_dir,
                          epochs=epochs, seed=seed, progress=progress, tensorboard=tensorboard, stop=stop or Stop(),
                          # each epoch to the study, for its pruner (Optuna prunes one objective only)
                          verbose=verbose, reports_epochs=tuner == "optuna" and len(objectives) == 1,
                          models=models)
    except (ValueError, KeyError, TypeError) as e:  # json errors are ValueErrors; wrong types in it TypeErrors
        raise UserError(f"the search state in {Path(out_dir) / 'keras_tuner'} is damaged ({type(e).__name__}); "
                        f"start again with --fresh") from None


def run(family: KerasFamily, prepared: Prepared, out_dir: str | Path, *, max_trials: int, epochs: Optional[int],
        tuner: Optional[str], seed: int, tensorboard: Optional[str] = None,
        chief: Optional[tuple[str, str | int]] = None, start_workers: Optional[Callable[[int], Any]] = None,
        stop: Optional[Stop] = None, verbose: bool = False, sampler: str = "tpe", pruner: str = "median",
        time_budget: Optional[float] = None, hyperparameters: Optional[kt.HyperParameters] = None,
        models: Optional[model_store.ModelStore] = None) -> list[dict]:
    """Run the search here, or (chief=(ip, port)) serve its oracle to workers until it is done.

    stop: a search_progress.Stop (Ctrl-C, --time-budget); None: none."""
    start_engine()
    keras.utils.set_random_seed(seed)
    before = trials_begun(out_dir)
    objective = trials_table.objective_of(family, prepared.meta)
    progress = search_progress.Progress(family.name, max_trials, objective,
                                        trials_table.chance(prepared.meta, objective[0]))
    t = _make_tuner(family, prepared, out_dir, max_trials=max_trials, epochs=epochs, tuner=tuner, seed=seed,
                    tensorboard=tensorboard, progress=progress, stop=stop, verbose=verbose, sampler=sampler, pruner=pruner,
                    parallel=chief is not None, time_budget=time_budget, hyperparameters=hyperparameters,
                    models=models)
    t.oracle.max_trials = max_trials  # a resumed search may be given a new total (before the study opens)
    record.describe(t.oracle.study, prepared.meta, **_settings(tuner, sampler, pruner, bool(family.first_trials)))
    if models is not None:
        model_store.record_store(t.oracle.study, models, worker=False)
    on_record = [x for x in t.oracle.study.get_trials(deepcopy=False, states=record.FINISHED)
                 if not record.interrupted(x)]
    if on_record and not t.oracle.trials and chief is None:
        # Keras Tuner resumes from its own state, which a deleted folder lost: new trials would take the
        # record's trial ids again
        raise UserError(f"the record holds {len(on_record)} trials of this search, but its Keras Tuner state "
                        f"({Path(out_dir) / 'keras_tuner'}) is gone: start again with --fresh")
    t.reconcile()
    if before:
        search_progress.resuming(family.name, len(t.oracle.end_order), max_trials)
    if chief is not None:
        from lyrics_cifar_search.runners.keras_search.distributed import serve  # gRPC: only when workers run
        serve(t, chief, start_workers)
        return t.trial_rows()
    try:
        t.search(verbose=0)
    except BudgetReached:
        pass  # the CLI says so
    except TooManyFailures as e:
        search_progress.log(trial_end.too_many_failures(family.name, e))
    return t.trial_rows()


def run_worker(family: KerasFamily, prepared: Prepared, out_dir: str | Path, *, epochs: Optional[int],
               tuner: Optional[str], seed: int, tensorboard: Optional[str] = None, verbose: bool = False,
               sampler: str = "tpe", pruner: str = "median") -> None:
    """A worker (KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP/PORT set): run the chief's trials until it says stop."""
    start_engine()
    keras.utils.set_random_seed(seed)
    progress = search_progress.Progress(family.name, 0, trials_table.objective_of(family, prepared.meta))
    t = _make_tuner(family, prepared, out_dir, max_trials=None, epochs=epochs, tuner=tuner, seed=seed,
                    tensorboard=tensorboard, progress=progress, verbose=verbose)
    from lyrics_cifar_search.runners.keras_search.distributed import PatientClient  # gRPC: only when workers run
    compat.become(t.oracle, PatientClient)  # Keras Tuner made it an OracleClient; this one waits when told IDLE
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    logger.info(f"[{family.name} {t.tuner_id}] asking the chief at {address} for trials")
    t.search(verbose=0)


# --- the engine interface (runners/engines.py) ----------------------------------------------------------------

def search(family: KerasFamily, prepared: Prepared, out_dir: Path, config: SearchConfig) -> list[dict]:
    """The search here; as the chief of --workers N here (on loopback) or of workers elsewhere (KERASTUNER_*
    variables); or, in a worker, the chief's trials. Returns the trials.csv rows ([] in a worker)."""
    config = dataclasses.replace(config, epochs=config.epochs or family.epochs)
    if not config.baseline:  # --no-baseline: no fixed first trials, the search measured alone
        family = dataclasses.replace(family, first_trials=())
    hyperparameters = None
    if config.shape:  # --set, --range, --choices, --enqueue (runners/shaping.py)
        family = dataclasses.replace(family, first_trials=shaping.fixed_first_trials(config.shape, family.first_trials))
        hyperparameters = shaping.keras_hyperparameters(config.shape, family, prepared.spec.get("with_artist", False))
    role = workers.keras_tuner_role()
    if role == "worker":  # the chief holds the lock and writes trials.csv
        run_worker(family, prepared, out_dir, epochs=config.epochs, tuner=config.tuner, seed=config.seed,
                   tensorboard=config.tensorboard, verbose=config.verbose, sampler=config.sampler,
                   pruner=config.pruner)
        logger.info(f"{os.environ['KERASTUNER_TUNER_ID']} done")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)

    def spawn(port):  # --workers N: N workers on loopback, their chief is this process
        return workers.start_workers(family, config, env_of=lambda i: {
            "KERASTUNER_TUNER_ID": f"worker{i}", "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port)})
    chief: tuple[str, str | int] | None = None
    local = config.workers > 1 and role != "chief"
    if role == "chief":  # workers on other machines connect to it
        chief = (os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"])
    elif local:
        chief = ("127.0.0.1", 0)  # the system picks a free port
    return run(family, prepared, out_dir, max_trials=config.max_trials, epochs=config.epochs, tuner=config.tuner,
               seed=config.seed, tensorboard=config.tensorboard, chief=chief, start_workers=spawn if local else None,
               stop=config.stop, verbose=config.verbose, sampler=config.sampler, pruner=config.pruner,
               time_budget=config.time_budget, hyperparameters=hyperparameters,
               # trials trained here keep their models in the store; a chief's workers have no study to claim on
               models=model_store.for_search(config, out_dir, len(trials_table.objectives_of(family, prepared.meta)) > 1)
               if chief is None else None)


def baseline(family: KerasFamily, prepared: Prepared) -> dict[str, Any]:
    """Trial 0's values: every hyperparameter the hypermodel declares in build(), at its default."""
    space = kt.HyperParameters()
    family.hypermodel(prepared.spec).build(space)
    return default_values(space.space)


def train_one(family: KerasFamily, prepared: Prepared, params: dict[str, Any], seed: int,
              epochs: Optional[int] = None) -> Any:
    """One configuration trained as a trial is (the same callbacks and early stopping); the model."""
    hp = kt.HyperParameters()
    hp.values = dict(params)
    budget = epochs or family.epochs
    assert budget, "the registry refuses a Keras family without epochs"
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = train(family, family.hypermodel(prepared.spec), hp, prepared, epochs=budget,
                         seed=seed, history_path=Path(tmp) / "history.csv")
    return model
