"""What the study oracle (optuna_oracle.py) tells its study as a Keras trial runs: each epoch's objective (the
learning curve) and the pruner's answer, then how the trial ended. A mixin of StudyOracle, before Keras Tuner's
Oracle, whose own update and end it calls first; it uses the oracle's study, trials and the study trial it asked."""

from typing import Any

import keras_tuner as kt
import optuna

from lyrics_cifar_search.runners import compat, trials_table
from lyrics_cifar_search.runners.keras_search.oracles import EPOCH, OracleMixin, TrialStatus, error_of, metrics_of
from lyrics_cifar_search.suite_common.failpoints import failpoint

SE = EPOCH + "se"  # the standard error of an epoch's value, sent beside it by ReportEachEpoch


class ConsecutiveFailures(RuntimeError):
    """Keras Tuner's stop after max_consecutive_failed_trials failed trials in a row (its RuntimeError), raised
    once the last one is recorded in Keras Tuner's state and in the study."""


class StudyReports(OracleMixin):
    """Each epoch's report and the trial's end, into the study (see the module's docstring)."""

    @kt.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        """Keras Tuner's update, and an epoch's objective (sent as "epoch/<objective>" by the tuner's
        ReportEachEpoch, with its standard error as "epoch/se") into the study, each epoch once. Like Keras
        Tuner's, it answers with the trial (a copy whose status is "STOPPED" when the pruner stops it here): a
        worker's chief sends it over gRPC."""
        if trial_id not in self.trials:  # a worker thought dead, whose trial runs again under a new id: stop
            return kt.engine.trial.Trial(self.get_space(), trial_id=trial_id, status=TrialStatus.STOPPED)
        if EPOCH + self.objective.name not in (metrics or {}):  # the trial's results (Keras Tuner's own update)
            return super().update_trial(trial_id, metrics, step)
        # an epoch's report is the study's alone: Keras Tuner's trial keeps only its results
        value, se = metrics[EPOCH + self.objective.name], metrics.get(SE)
        reported = self._reported.setdefault(trial_id, set())
        if trial_id not in self.pruned and step not in reported and trials_table.is_score(value):
            reported.add(step)
            asked = self._optuna_trial(trial_id)
            if trials_table.is_score(se):
                asked.set_user_attr("objective_se", float(se))
            asked.report(float(value), step)
            # asked for every trial, fixed ones too: successive halving records a trial's rung value when asked
            prune = asked.should_prune()
            verdict = getattr(self.study.pruner, "last", None)
            if self.is_fixed(trial_id):
                pass  # never pruned, never counted as spared
            elif prune:
                self.pruned.add(trial_id)
                if verdict is not None:  # how far beyond its pruner's cut it was
                    asked.set_user_attr("pruned_beyond_cut", verdict.beyond)
            elif verdict is not None and verdict.trial == asked.number and verdict.spared:
                asked.set_user_attr("spared_by_margin", True)  # the rule would have pruned it here
        kept = self.trials[trial_id]
        return kt.engine.trial.Trial(kept.hyperparameters, trial_id=trial_id,
                                     status=TrialStatus.STOPPED if trial_id in self.pruned else kept.status)

    @kt.synchronized
    def end_trial(self, trial):
        """Keras Tuner's end (also under its older signature end_trial(trial_id, status), which @synchronized
        turns into this one), and the study told: COMPLETE with the value, PRUNED (the pruner stopped it, or
        --time-budget-hard cut it short: its value is not from the full budget), or FAIL."""
        trial_id = trial.trial_id
        if trial_id in self.pruned and trial.status == "COMPLETED":
            trial.status = TrialStatus.STOPPED  # recorded as PRUNED, never a best/ candidate
        # Keras Tuner checks max_consecutive_failed_trials before it saves the trial: deferred until the trial is
        # in its state and in the study, so that the stop loses no record of the last failure
        with compat.consecutive_failure_check_deferred(self):
            super().end_trial(trial)
        failpoint("oracle-saved")  # Keras Tuner's state has the trial; the study not yet
        self._tell(trial_id)
        try:
            compat.check_consecutive_failures(self)
        except RuntimeError as e:
            raise ConsecutiveFailures(str(e)) from None

    def _tell(self, trial_id):
        """The study told how Keras Tuner's ended trial ended, on the trial's own study trial."""
        asked = self._optuna_trial(trial_id)
        kept = self.trials[trial_id]
        self._add_late_values(asked, kept.hyperparameters)
        if self.is_baseline(trial_id):  # also when run again after a kill, under a new ask
            asked.set_user_attr("is_baseline", True)
        metrics = {k: v for k, v in metrics_of(kept).items() if trials_table.is_score(v)}
        for name, value in metrics.items():
            asked.set_user_attr(name, float(value))
        value = metrics.get(self.objective.name)
        if self.objectives and len(self.objectives) > 1:  # a Pareto search: every objective, or none
            values: list[Any] = [metrics.get(name) for name, _ in self.objectives]
            value = [float(v) for v in values] if all(v is not None for v in values) else None
        if kept.status == "COMPLETED" and value is not None:
            self.study.tell(asked, value if isinstance(value, list) else float(value))
        elif trial_id in self.pruned or kept.status == TrialStatus.STOPPED:
            self.study.tell(asked, state=optuna.trial.TrialState.PRUNED)  # its value: the last epoch reported
        else:
            if error_of(kept):
                asked.set_user_attr("error", error_of(kept))
            if trial_id in compat.retry_queue(self):  # Keras Tuner runs it again: this attempt is not a row
                asked.set_user_attr("interrupted", True)
            self.study.tell(asked, state=optuna.trial.TrialState.FAIL)
        self._asked.pop(trial_id, None)
        self._reported.pop(trial_id, None)
