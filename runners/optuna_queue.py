"""What an Optuna family's study runs next: the baseline first (enqueue_baseline), trials a dead process left
RUNNING queued again with their values (run_again: on resume, without a heartbeat, or stale), and the counts a
search stops by (trials finished, trials taken). Used by runners/optuna_engine.py."""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Collection, Optional

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from lyrics_cifar_search.runners import compat, record

if TYPE_CHECKING:
    from lyrics_cifar_search.runners.shaping import Shape
    from lyrics_cifar_search.search_spaces import OptunaFamily

FINISHED = record.FINISHED


def taken(study: optuna.Study, number: int) -> int:
    """Trials started before trial `number` that finish or may still finish."""
    retried = record.retried(study)
    return sum(t.number < number and not record.interrupted(t, retried)
               and t.state in (*FINISHED, optuna.trial.TrialState.RUNNING) for t in study.trials)


def queued(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))


def counted(study: optuna.Study) -> int:
    retried = record.retried(study)
    return sum(t.state in FINISHED and not record.interrupted(t, retried) for t in study.trials)


def enqueue_baseline(study: optuna.Study, family: OptunaFamily, baseline: bool = True,
                     shape: Optional[Shape] = None) -> None:
    """Trial 0 of a new study: the family's defaults (the earlier study's model; --set's values fixed), tagged
    is_baseline, none with --no-baseline (baseline=False); then --enqueue's configurations (Optuna samples what
    one leaves out)."""
    if study.trials:
        return
    fixed = shape.fixed if shape else {}
    if baseline:
        study.enqueue_trial({**(family.defaults or {}), **fixed}, user_attrs={"is_baseline": True})
    for row in (shape.enqueued if shape else []):
        study.enqueue_trial({**row, **fixed})


def run_again(study: optuna.Study, numbers: Collection[int]) -> None:
    """RUNNING trials `numbers` that nobody runs any more: each is failed (marked interrupted, out of the tables)
    and queued again with its values by Optuna's RetryHeartbeatStaleTrialCallback (RetryFailedTrialCallback's
    name since 4.9), as Optuna's heartbeat check does with a stale trial. A trial killed before it drew its values
    runs the values it was queued with."""
    with warnings.catch_warnings():  # marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=None)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.number not in numbers:
            continue
        failed = copy.deepcopy(record.cut_short(study, t.number))  # this attempt: FAIL, out of the tables
        failed.user_attrs = {k: v for k, v in failed.user_attrs.items() if k != "interrupted"}  # the new one runs
        retry(study, failed)


def retry_interrupted(study: optuna.Study) -> None:
    """Trials left RUNNING by a killed run, found on resume: run again now. A search alone on its results folder
    (its lock says nobody else runs it) knows such a trial is dead, where Optuna's heartbeat check would wait
    for its grace period first."""
    run_again(study, {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))})


def fail_orphans(study: optuna.Study, grace: float) -> None:
    """RUNNING trials with no heartbeat at all, `grace` seconds after their start (a process killed before its
    first beat; Optuna's stale check skips them): run again, as a stale one is."""
    run_again(study, set(compat.running_without_heartbeat(compat.storage_of(study), study.study_name, grace)))
