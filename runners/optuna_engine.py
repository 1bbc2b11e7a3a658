"""Optuna engine: a scikit-learn family searched by an Optuna study.

The study is the search's record (runners/record.py): results/optuna.db (or
--storage), named like the results folder, so a re-run resumes it and
`optuna-dashboard sqlite:///results/optuna.db` opens it.

Choices, noted:
- The baseline (the family's DEFAULTS) is enqueued as the first trial of a
  new study and tagged with the user attribute is_baseline.
- The sampler is seeded with seed + the number of trials already on record,
  so a resumed seeded search does not replay the proposals of its first run.
- Trials left RUNNING by a killed run are marked FAIL on resume.
- Feature matrices are fitted once per distinct FEATURE_PARAMS setting and
  kept in memory for the rest of the run; a family's refine_features applies
  its cheap feature settings on top of them (one trial: runners/optuna_trial.py).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import optuna
import skops.io as sio

from lyrics_cifar_search.runners import (best_store, model_store, policy, record, search_progress, shaping,
                                        trial_end, trials_table, workers)
from lyrics_cifar_search.suite_common import CANNOT_WRITE, UserError
from lyrics_cifar_search.suite_common.failpoints import failpoint
# one trial: features, classifier, metrics and costs (optuna_trial.py)
from lyrics_cifar_search.runners.optuna_trial import FeatureCache, costs, parameter_count, train
# what the study runs next: the baseline, trials run again, the counts (optuna_queue.py)
from lyrics_cifar_search.runners import optuna_queue as queue

if TYPE_CHECKING:  # the engine interface's types (runners/engines.py, Engine)
    from lyrics_cifar_search.runners.engines import SearchConfig
    from lyrics_cifar_search.runners.prepare import Prepared
    from lyrics_cifar_search.runners.shaping import Shape
    from lyrics_cifar_search.search_spaces import OptunaFamily

logger = logging.getLogger(__name__)

FINISHED = record.FINISHED
# Proposals in a row already tried before the space counts as used up (Keras Tuner's collision limit, 20)
MAX_REPEATS = 20


class StorageFailed(BaseException):
    """Raised in a trial when the study's database or a result file cannot be written: a BaseException, so
    Optuna does not record it as the configuration failing (nor log a traceback); the search ends with one
    line."""


def _optimize(study, url, *args, **kwargs):
    """study.optimize, with the database or the model store failing (mid-trial, or while Optuna records a trial:
    there its own check then fails with "Should not reach") turned into one line."""
    try:
        study.optimize(*args, **kwargs)
    except (StorageFailed, Exception) as e:
        if isinstance(e, StorageFailed) and isinstance(e.__cause__, (OSError, UserError)):
            raise e.__cause__ from None  # the command line says which file, in one line
        problem = record.storage_problem(e.__cause__ if isinstance(e, StorageFailed) else e)
        if problem is None:
            raise
        raise UserError(record.storage_error_line(problem, url)) from None


def prepare_study(family: OptunaFamily, out_dir: str | Path, *, seed: int, sampler: str = "tpe",
                  storage: Optional[str] = None, shared: bool = False,
                  objectives: Sequence[tuple[str, str]] = (trials_table.OBJECTIVE,), name: Optional[str] = None,
                  max_trials: Optional[int] = None, time_budget: Optional[float] = None,
                  meta: Optional[dict[str, Any]] = None, baseline: bool = True,
                  shape: Optional[Shape] = None) -> optuna.Study:
    """Open (or create) the search's study (name: study_name's); before any worker starts, queue the
    baseline and tidy what a killed single run left. objectives: [(metric, "max"|"min"), ...], the first the one
    best/ is chosen by; several: a Pareto search."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = name or out_dir.name
    shared_url, db = storage, record.open_storage(out_dir, storage)  # db: the storage Optuna writes to
    if shared_url is None:
        record.move_own_study(out_dir, family.name, db, name)
    n_before = record.trials_on_record(db, name)
    # one fixed first trial: the family's defaults (enqueue_baseline), none with --no-baseline
    budget = policy.Budget(max_trials=max_trials, time_budget=time_budget, fixed=int(baseline), parallel=shared)
    # seed + trials on record: a resumed seeded search does not replay its proposals
    proposer = policy.make_sampler(sampler, seed + n_before + os.getpid() % 1000 * shared, budget,
                                   defaults={**(family.defaults or {}), **(shape.fixed if shape else {})},
                                   legacy_prior=record.legacy_prior(db, name))
    if shape and shape.fixed:  # --set: Optuna's own way to fix parameters of a search
        with warnings.catch_warnings():  # marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            proposer = optuna.samplers.PartialFixedSampler(shape.fixed, proposer)
    study = optuna.create_study(study_name=name, storage=db, directions=record.directions(objectives),
                                sampler=proposer, load_if_exists=True)
    if meta is not None:  # another search's trials are refused before anything is written
        record.check_identity(study, meta, sampler=sampler, baseline=baseline)
        study.set_user_attr("policy", policy.summary(budget, sampler, "none"))
    bad = [t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
           and not all(trials_table.is_score(v) for v in t.values or [None])]
    if bad:
        raise UserError(f"the study in {getattr(db, 'url', out_dir)} is damaged (trial "
                        f"{bad[0]}'s value is not a number); start again with --fresh")
    if not shared:  # alone on this study (the folder lock says so): RUNNING trials are from a killed run
        queue.retry_interrupted(study)
        queue.enqueue_baseline(study, family, baseline, shape)
        best_store.reconcile_best(out_dir, {t.number: t.values[0] for t in study.trials
                                         if t.state == optuna.trial.TrialState.COMPLETE}, objectives)
        if any(t.state in FINISHED for t in study.trials):
            record.write_table(study, out_dir)
    return study


def run(family: OptunaFamily, prepared: Prepared, out_dir: str | Path, *, max_trials: int, seed: int,
        sampler: str = "tpe", storage: Optional[str] = None, worker: bool = False, quiet_if_done: bool = False,
        stop: Optional[search_progress.Stop] = None, time_budget: Optional[float] = None, baseline: bool = True,
        shape: Optional[Shape] = None, models: Optional[model_store.ModelStore] = None) -> list[dict]:
    """Run trials until the study holds max_trials finished ones; returns trials.csv's rows.

    worker=True: one of several processes sharing the study (prepared by the
    process that started them, or by the first to use a --storage URL).
    stop: a search_progress.Stop (Ctrl-C, --time-budget); None: none. models: the model_store.ModelStore that
    keeps the kept trials' models (None: best/ and baseline/ alone)."""
    out_dir, stop = Path(out_dir), stop or search_progress.Stop()
    shared = worker or storage is not None
    objectives = trials_table.objectives_of(family, prepared.meta)
    study = _open_study(family, prepared, out_dir, max_trials=max_trials, seed=seed, sampler=sampler,
                        storage=storage, worker=worker, shared=shared, objectives=objectives,
                        time_budget=time_budget, baseline=baseline, shape=shape)
    done_before = queue.counted(study)
    if quiet_if_done and done_before >= max_trials:  # workers finished the search: nothing to say
        return record.write_table(study, out_dir)
    if done_before and not worker:
        search_progress.resuming(family.name, done_before, max_trials)
    if max_trials - done_before <= 0:
        search_progress.log(f"{family.name}: {done_before} trials already finished (--max-trials {max_trials}); "
                            "nothing to run")
        return record.write_table(study, out_dir)
    if stop.out_of_time() or stop.requested:  # SIGTERM while workers ran
        return record.rows(study)
    if models is not None:
        model_store.record_store(study, models, worker)
    search = _Search(family, prepared, out_dir, study, max_trials=max_trials, seed=seed, shared=shared,
                     stop=stop, objectives=objectives, shape=shape, models=models)
    url = storage or record.storage_url(out_dir.parent)
    if queue.counted(study) + (search.running() if shared else 0) < max_trials:
        search.optimize(url)
    if storage is not None and not worker:
        _wait_for_running_trials(search, url)
    fits, trials = search.cache.misses, search.cache.hits + search.cache.misses
    search_progress.log(f"{family.name}: feature matrices fitted {fits} {'time' if fits == 1 else 'times'} for "
                        f"{trials} {'trial' if trials == 1 else 'trials'}")
    return record.rows(study)


def _open_study(family, prepared, out_dir, *, max_trials, seed, sampler, storage, worker, shared, objectives,
                time_budget=None, baseline=True, shape=None):
    """The search's study, prepared (prepare_study), its baseline queued and its identity described (or, in a
    worker, checked: a worker on other data is refused here)."""
    study = prepare_study(family, out_dir, seed=seed, sampler=sampler, storage=storage, shared=shared,
                          objectives=objectives, name=record.study_name(out_dir, prepared.record, storage),
                          max_trials=max_trials, time_budget=time_budget, meta=prepared.meta, baseline=baseline,
                          shape=shape)
    if storage is not None and not worker:
        queue.enqueue_baseline(study, family, baseline, shape)
    if not worker:
        record.describe(study, prepared.meta, sampler=sampler, baseline=baseline)
    else:  # the process that started the workers described it
        record.check_identity(study, prepared.meta, sampler=sampler, baseline=baseline)
    return study


class _Search:
    """This process's part of an Optuna search: one trial's life (train, stage, record, promote, report) and the
    callbacks that stop the search, sharing the study, the feature cache and the staged models."""

    def __init__(self, family, prepared, out_dir, study, *, max_trials, seed, shared, stop, objectives, shape=None,
                 models=None):
        self.family, self.p, self.out_dir, self.study = family, prepared, out_dir, study
        self.max_trials, self.seed, self.shared, self.stop = max_trials, seed, shared, stop
        self.objectives, self.objective = objectives, objectives[0]  # best/ is chosen by the first
        self.cache = FeatureCache(family, prepared.x_train, prepared.x_val, prepared.spec)
        self.staged = {}  # trial_end.Staged, by trial number, until the trial is recorded
        self.ended_states = []  # this process's trials, in the order they ended
        self.repeats = 0  # proposals in a row already tried
        self.shape = shape  # --range and --choices: what suggest() sees (runners/shaping.py)
        self.models = models  # the artifact store of the kept trials' models (runners/model_store.py)
        self.progress = search_progress.Progress(family.name, max_trials, self.objective,
                                                 trials_table.chance(prepared.meta, self.objective[0]))

    def optimize(self, storage_url):
        _optimize(self.study, storage_url, self.run_one, n_trials=None,
                  callbacks=[self.after_trial, self.enough, self.budget], catch=(Exception,))

    def running(self):
        return len(self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))

    def run_one(self, trial):
        try:
            return self._one_trial(trial)
        except Exception as e:  # the disk or the database failing is not the configuration failing
            if record.storage_problem(e) is not None or (isinstance(e, OSError) and e.errno in CANNOT_WRITE):
                raise StorageFailed() from e
            raise

    def _one_trial(self, trial):
        family, p, out_dir = self.family, self.p, self.out_dir
        if self.shared and queue.taken(self.study, trial.number) >= self.max_trials:
            # workers raced for the last slot: the trials started earlier fill it
            trial.set_user_attr("interrupted", True)
            self.study.stop()
            raise optuna.TrialPruned()
        try:
            params = family.suggest(shaping.ShapedTrial(trial, self.shape) if self.shape else trial)
            if self.tried_before(trial):
                # Keras Tuner's rule, kept by both engines: a configuration already tried is not trained again. The
                # proposal ends PRUNED, marked duplicate (out of the tables and the trial count); TPE ranks it
                # poor, so it moves on; after Keras Tuner's 20 in a row the space is taken as used up.
                trial.set_user_attr("duplicate", True)
                raise optuna.TrialPruned()
            failpoint("trial-started")
            model, metrics = train(family, params, p, self.cache, self.seed)
        except Exception as e:
            trial.set_user_attr("error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            raise
        except BaseException:  # Ctrl-C: not a failed configuration; it runs again on resume
            trial.set_user_attr("interrupted", True)
            raise
        if len(self.objectives) > 1:  # a Pareto search: the costs it weighs
            metrics.update(costs(model, [n for n, _ in self.objectives[1:]], p.x_val[:1], metrics))
        for k, v in metrics.items():
            trial.set_user_attr(k, v)
        meta = trial_end.model_meta(p.meta, trial.number, params, metrics, "model.skops",
                                    parameter_count(model.named_steps["classifier"]))
        is_baseline = bool(trial.user_attrs.get("is_baseline"))  # kept beside best/ for the paired comparison
        # what it leaves (runners/trial_end.py): staged now, put in place once Optuna has recorded it
        self.staged[trial.number] = trial_end.stage(
            out_dir, trial.number, lambda d: sio.dump(model, d / "model.skops"), meta, p.artifacts,
            objectives=self.objectives, metrics=metrics, kept_folders=[best_store.BASELINE] if is_baseline else [],
            models=self.models, study=self.study, trial=trial, is_baseline=is_baseline)
        if len(self.objectives) > 1:
            return [metrics[name] for name, _ in self.objectives]
        return metrics[self.objective[0]]

    def tried_before(self, trial):
        """Whether a trial of the search (not an attempt cut short, not a duplicate) ran this trial's values."""
        retried = record.retried(self.study)
        return any(t.number != trial.number and t.params == trial.params and not record.interrupted(t, retried)
                   and t.state in FINISHED for t in self.study.get_trials(deepcopy=False))

    def after_trial(self, study, frozen):
        if frozen.user_attrs.get("duplicate"):
            self.repeats += 1
            if self.repeats > MAX_REPEATS:
                search_progress.log(f"{self.family.name}: the sampler proposed configurations already tried "
                                    f"{MAX_REPEATS} times in a row: the space is used up; stopping the search")
                study.stop()
            return
        self.repeats = 0
        failpoint("trial-recorded")
        trial_end.settle(self.out_dir, self.staged.pop(frozen.number, None),
                         frozen.state == optuna.trial.TrialState.COMPLETE, self.objectives, study, self.models)
        self.ended_states.append(frozen.state.name)
        trial_end.write_record(study, self.out_dir, self.progress, frozen.number, frozen.state.name,
                               frozen.values[0] if frozen.values else None, self.family.defaults)
        if self.stop.requested:  # Ctrl-C: stop before the next trial
            study.stop()
        elif trials_table.failed_in_a_row(self.ended_states):
            search_progress.log(trial_end.too_many_failures(self.family.name, frozen.user_attrs.get("error", "?")))
            study.stop()

    def enough(self, study, frozen):
        # Not Optuna's MaxTrialsCallback: it counts every trial of the given states, and a trial cut short by a
        # kill (FAIL, marked interrupted, run again) must not take a slot; with workers, those in progress count.
        # finished plus in progress: workers stop taking new trials at the total
        if queue.counted(study) + (self.running() if self.shared else 0) >= self.max_trials:
            study.stop()

    def budget(self, study, frozen):  # --time-budget: no new trial starts after the deadline
        if queue.counted(study) < self.max_trials and self.stop.out_of_time():
            study.stop()


def _wait_for_running_trials(search, storage_url):
    """--storage: the process that owns the search ends it only when no trial is RUNNING any more: one of a live
    worker elsewhere ends, one of a process that died is failed once its heartbeat is stale and queued again
    (Optuna's retry callback), and runs here."""
    study, stop, grace = search.study, search.stop, 3 * trials_table.HEARTBEAT_S
    while search.running() and not stop.requested and not stop.out_of_time():
        search_progress.log(f"{search.family.name}: waiting for {search.running()} running trial(s): a worker's, "
                            f"or a dead process's, queued again once its heartbeat is {grace} s old (one with no "
                            f"heartbeat {grace} s after its start)")
        while search.running() and not queue.queued(study) and not stop.requested and not stop.out_of_time():
            for _ in range(trials_table.HEARTBEAT_S * 4):  # Ctrl-C and SIGTERM end the wait within 0.25 s
                if stop.requested:
                    break
                time.sleep(0.25)
            with warnings.catch_warnings():  # marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            queue.fail_orphans(study, grace)
        if (queue.queued(study) or queue.counted(study) + search.running() < search.max_trials) and not stop.requested \
                and not stop.out_of_time():  # a dead process's trial, queued again or failed: run what is left
            search.optimize(storage_url)


# --- the engine interface (runners/engines.py) ----------------------------------------------------------------

def search(family: OptunaFamily, prepared: Prepared, out_dir: Path, config: SearchConfig) -> list[dict]:
    """The search here; with --workers N, N processes sharing its study; in such a worker, trials until the
    study holds --max-trials. Returns the trials.csv rows ([] in a worker)."""
    models = model_store.for_search(config, out_dir, pareto=len(trials_table.objectives_of(family, prepared.meta)) > 1)
    if config.worker:  # one of several: the process that started it holds the lock
        run(family, prepared, out_dir, max_trials=config.max_trials, seed=config.seed, sampler=config.sampler,
            storage=config.storage, worker=True, stop=config.stop, time_budget=config.time_budget,
            baseline=config.baseline, shape=config.shape, models=models)
        logger.info(f"worker {os.getpid()} done")
        return []
    if config.workers > 1:
        return _run_workers(family, prepared, out_dir, config, models)
    out_dir.mkdir(parents=True, exist_ok=True)
    return run(family, prepared, out_dir, max_trials=config.max_trials, seed=config.seed, sampler=config.sampler,
               storage=config.storage, stop=config.stop, time_budget=config.time_budget, baseline=config.baseline,
               shape=config.shape, models=models)


def _run_workers(family, prepared, out_dir, config, models=None):
    """Prepare the study once, then config.workers processes share it (one GPU each where GPUs exist)."""
    objectives = trials_table.objectives_of(family, prepared.meta)
    name = record.study_name(out_dir, prepared.record, config.storage)
    study = prepare_study(family, out_dir, seed=config.seed, sampler=config.sampler, storage=config.storage,
                          objectives=objectives, name=name, max_trials=config.max_trials,
                          time_budget=config.time_budget, meta=prepared.meta, baseline=config.baseline,
                          shape=config.shape)
    if config.storage:
        queue.enqueue_baseline(study, family, config.baseline, config.shape)
    record.describe(study, prepared.meta, sampler=config.sampler, baseline=config.baseline)  # before the workers
    procs = workers.start_workers(family, config, ["--worker"])
    codes = [p.wait() for p in procs]
    if any(codes):
        search_progress.log(f"worker exit codes: {codes}")
    if config.storage is None:
        # Every worker of this study has exited (the study is in this folder, which this process
        # holds): a trial still RUNNING belonged to a worker that died. This process re-queues it
        # and runs what is left, so the search ends with --max-trials finished trials.
        return run(family, prepared, out_dir, max_trials=config.max_trials, seed=config.seed,
                   sampler=config.sampler, quiet_if_done=True, stop=config.stop, time_budget=config.time_budget,
                   baseline=config.baseline, shape=config.shape, models=models)
    study = prepare_study(family, out_dir, seed=config.seed, sampler=config.sampler, storage=config.storage,
                          shared=True, objectives=objectives, name=name, max_trials=config.max_trials,
                          time_budget=config.time_budget, baseline=config.baseline, shape=config.shape)
    return record.write_table(study, out_dir)


def baseline(family: OptunaFamily, prepared: Prepared) -> dict[str, Any]:
    """Trial 0's values: the family's defaults (the earlier study's)."""
    return dict(family.defaults or {})


def train_one(family: OptunaFamily, prepared: Prepared, params: dict[str, Any], seed: int,
              epochs: Optional[int] = None) -> Any:
    """One configuration trained as a trial is (features fitted on the training rows); the fitted pipeline."""
    cache = FeatureCache(family, prepared.x_train, prepared.x_val, prepared.spec)
    model, _ = train(family, params, prepared, cache, seed)
    return model
