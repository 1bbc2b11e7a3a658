"""Keras Tuner's oracles, with the study's configuration as the first trial of a new search, each trial
recorded in the search's Optuna study (runners/record.py) as it ends."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import keras_tuner as kt
import optuna

from lyrics_cifar_search.runners import record, trials_table
from lyrics_cifar_search.suite_common.status import KERAS_TUNER_ENDED, Status, of_keras_tuner

if TYPE_CHECKING:  # the mixins below are mixed into a Keras Tuner Oracle: the checker reads them as one
    from keras_tuner import Oracle as OracleMixin
else:
    OracleMixin = object

TrialStatus = kt.engine.trial.TrialStatus  # Keras Tuner's trial states (the suite's own: Status)


def user_values(values: dict[str, Any]) -> dict[str, Any]:
    """A Keras Tuner trial's values without Keras Tuner's own bookkeeping ("tuner/epochs", "tuner/trial_id", ...
    of Hyperband's brackets): the hyperparameters the hypermodel declared."""
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def default_values(space: Sequence[Any]) -> dict[str, Any]:
    """The active hyperparameters of a space, each at its default."""
    hps = kt.HyperParameters()
    values = {}
    for hp in space:
        hps.merge([hp])
        if hps.is_active(hp):
            values[hp.name] = hp.default
    return values


def are_defaults(values: dict[str, Any], space: Sequence[Any], overrides: Optional[dict[str, Any]] = None) -> bool:
    """Whether a Keras trial's values are every active hyperparameter at its default, with a fixed trial's
    overrides: the one rule for the baseline (no overrides: trial 0, the earlier study's configuration) and for
    the trials a family keeps (Family.kept_trials). Compared on the hyperparameters both hold: one a hypermodel
    declares in fit() (batch_size) joins the space after the first trial, and a trial begun before holds none
    (a baseline run again on another worker once the space had it). Keras Tuner's collision rule runs no
    configuration twice."""
    expected = {**default_values(space), **(overrides or {})}
    return all(expected[k] == v for k, v in user_values(values).items() if k in expected)


class BaselineFirst(OracleMixin):
    """Oracle mixin: the first trial of a new search is the defaults.

    A family may ask for more fixed first trials (Family.first_trials, each a set of
    overrides of the defaults), e.g. cifar_transfer's from-scratch reference.
    """

    first_trials: tuple[dict, ...] = ({},)

    def populate_space(self, trial_id):  # Keras Tuner's documented override for an oracle
        n = len(self.trials)  # trials begun before this one
        response = super().populate_space(trial_id)
        values = response.get("values")
        if n >= len(self.first_trials) or response.get("status") != TrialStatus.RUNNING or "tuner/trial_id" in values:
            return response  # a searched trial, or Hyperband continuing one
        fixed = self.fixed_values(n)
        bookkeeping = {k: v for k, v in values.items() if k not in user_values(values)}  # Hyperband's bracket
        if bookkeeping:
            # Like for like: the baseline (and a family's other fixed first trials) trains with the full
            # epoch budget, not the first bracket's share, so "best vs baseline" never compares unequal
            # training.
            bookkeeping["tuner/epochs"] = self.max_epochs
        return {"status": TrialStatus.RUNNING, "values": {**fixed, **bookkeeping}}

    def fixed_values(self, n):
        """Fixed first trial n: every hyperparameter's default, with that trial's overrides."""
        return {**default_values(self.hyperparameters.space), **self.first_trials[n]}


EPOCH = "epoch/"  # an epoch's objective, as ReportEachEpoch sends it to the oracle (not a result of the trial)


def number(trial_or_id: Any) -> int:
    """The trial's id as the suite writes it everywhere (trials.csv, trial lines, best/, histories, TensorBoard,
    the dashboard): a plain number. Keras Tuner's own ids are zero-padded to the digits of --max-trials at the
    time ("05" with 10 trials, "005" after a resume with 100), so a resume would otherwise mix formats."""
    tid = getattr(trial_or_id, "trial_id", trial_or_id)
    return int(tid)


def status_of(trial: kt.engine.trial.Trial) -> Status:
    """A Keras Tuner trial's status as the suite records it (a Status)."""
    return of_keras_tuner(trial.status)


def remove_trial_files(project_dir: str | Path, which: Callable[[int], bool]) -> None:
    """Remove the Keras Tuner folder and the history (results/<family>/histories/) of each trial whose number
    which(number) accepts: a trial taken back to run again, or one the oracle no longer holds after a kill."""
    for path in [*Path(project_dir).glob("trial_*"), *(Path(project_dir).parent / "histories").glob("trial_*.csv")]:
        n = path.stem[len("trial_"):]
        if n.isdigit() and which(int(n)):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def metrics_of(trial: kt.engine.trial.Trial) -> dict[str, Any]:
    return {name: _last_value(trial, name) for name in trial.metrics.metrics if not name.startswith(EPOCH)}


def _last_value(trial, name):
    try:
        return trial.metrics.get_last_value(name)
    except (TypeError, ValueError):  # a value in the saved state that is not a number: damaged state
        return None


def error_of(trial: kt.engine.trial.Trial) -> Optional[str]:
    """Why a failed Keras Tuner trial failed: the last line of its message (None for one that did not fail)."""
    lines = (trial.message or "").strip().splitlines()
    return lines[-1] if lines and status_of(trial) == Status.FAIL else None




class KerasRecord(OracleMixin):
    """Oracle mixin: the search's study (record_at = (storage URL, study name)) and each ended Keras Tuner
    trial in it, with its values, start and end times and learning curve (its history file's objective)."""

    record_at: Optional[tuple[str, str]] = None
    identity = None  # (meta, settings): what the study's trials must be (record.check_identity), when known
    _record = None

    @property
    def study(self):
        if self._record is None:
            assert self.record_at is not None, "make_oracle sets where the study is"
            url, name = self.record_at
            study = optuna.create_study(
                study_name=name, storage=record.open_storage(None, url, heartbeat=False), load_if_exists=True,
                direction=record.direction(self.objective.direction))
            self.check_identity(study)
            self._record = study
        return self._record

    def check_identity(self, study):
        """Another search's trials in the study are refused before anything is written to it."""
        if self.identity is not None:
            meta, settings = self.identity
            record.check_identity(study, meta, **settings)

    def populate_space(self, trial_id):
        self.__dict__.setdefault("_started", {})[trial_id] = time.time()
        return super().populate_space(trial_id)

    def is_baseline(self, trial_id):
        """The first trial of the search, at every hyperparameter's default."""
        order = self.start_order
        return bool(order) and trial_id == order[0] and are_defaults(self.trials[trial_id].hyperparameters.values,
                                                                     self.hyperparameters.space)

    def record_ended(self, trial_id):
        """A Keras Tuner trial that has ended, into the study (after a kill: one the study is missing)."""
        t = self.trials[trial_id]
        metrics = {k: v for k, v in metrics_of(t).items() if trials_table.is_score(v)}
        values = t.hyperparameters.values
        space = {hp.name: record.keras_distribution(hp, for_sampling=False) for hp in self.hyperparameters.space}
        history = Path(self._project_dir).parent / "histories" / f"trial_{number(trial_id)}.csv"
        end = time.time()
        start = self.__dict__.get("_started", {}).pop(trial_id, end - metrics.get("duration_s", 0))
        record.add_ended(self.study, trial_id=number(trial_id), state=status_of(t),
                         params=user_values(values),
                         distributions={k: d for k, d in space.items() if d is not None},
                         value=metrics.get(self.objective.name),
                         attrs={**metrics, "is_baseline": self.is_baseline(trial_id),
                                "error": error_of(t), "epochs_budget": values.get("tuner/epochs")},
                         curve=_curve(history, self.objective.name), start=start, end=end)

    def record_missing(self):
        """After a kill: every ended Keras Tuner trial the study does not hold yet goes in."""
        skip = record.retried(self.study)
        held = {record.trial_id(t) for t in self.study.get_trials(deepcopy=False)
                if t.state in record.FINISHED and not record.interrupted(t, skip)}
        for tid, t in self.trials.items():
            if t.status in KERAS_TUNER_ENDED and number(tid) not in held:
                self.record_ended(tid)


def _curve(history, objective):
    """{epoch index: objective} from a trial's history file ({} when there is none)."""
    try:
        with open(history, newline="") as f:
            return {i: float(r[objective]) for i, r in enumerate(csv.DictReader(f)) if r.get(objective)}
    except (OSError, ValueError, KeyError):
        return {}


class RecordedInStudy(KerasRecord):
    """Keras Tuner's own oracles: each trial into the study as it ends."""

    @kt.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        if trial.trial_id in self.end_order:  # not one Keras Tuner runs again
            self.record_ended(trial.trial_id)


class RandomOracle(RecordedInStudy, BaselineFirst, kt.oracles.RandomSearchOracle):
    pass


class BayesianOracle(RecordedInStudy, BaselineFirst, kt.oracles.BayesianOptimizationOracle):
    pass


class HyperbandOracle(RecordedInStudy, BaselineFirst, kt.oracles.HyperbandOracle):
    pass
