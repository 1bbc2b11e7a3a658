"""SuiteTuner: Keras Tuner's Tuner, writing the suite's results (trials.csv, histories, best/) as trials end."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import keras
import keras_tuner as kt

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search.runners import best_store, compat, record, trial_end, trials_table
from lyrics_cifar_search.runners.keras_search.study_reports import SE
from lyrics_cifar_search.runners.keras_search.oracles import (EPOCH, TrialStatus, are_defaults, default_values,
                                                              metrics_of, number, remove_trial_files, status_of,
                                                              user_values)
from lyrics_cifar_search.runners.keras_search.errors import FamilyFailed, WriteFailed
from lyrics_cifar_search.runners.keras_search.trial import BudgetReached, StopAtDeadline, TooManyFailures, train
from lyrics_cifar_search.study_data.text import as_model_takes
from lyrics_cifar_search.suite_common import UserError, warn
from lyrics_cifar_search.suite_common.failpoints import failpoint
from lyrics_cifar_search.suite_common.status import Status

logger = logging.getLogger(__name__)


class TrialBoard(keras.callbacks.TensorBoard):
    """--tensorboard: one run per trial, <dir>/<family>[_artist]/trial_<id>, with every hyperparameter for
    TensorBoard's HParams view, written when training starts (a batch size the hypermodel's fit() searches
    is known by then)."""

    def __init__(self, log_dir, hp, trial_id):
        super().__init__(log_dir=str(log_dir))
        self.hp, self.trial_id = hp, str(trial_id)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        import tensorflow as tf  # TensorFlow: only on that backend
        from tensorboard.plugins.hparams import api as hparams_api  # only with --tensorboard
        values = user_values(self.hp.values)
        with tf.summary.create_file_writer(self.log_dir).as_default():
            hparams_api.hparams(values, trial_id=self.trial_id)


class SuiteTuner(compat.OneStateFile, kt.Tuner):
    def __init__(self, oracle, hypermodel, *, family, prepared, out_dir, epochs, seed, progress, tensorboard=None,
                 stop, verbose=False, reports_epochs=False, models=None, **kwargs):
        self.family, self.prepared, self.out_dir, self.tensorboard = family, prepared, Path(out_dir), tensorboard
        self.epochs, self.seed, self.progress = epochs, seed, progress
        self.objective = trials_table.objective_of(family, prepared.meta)
        self.objectives = trials_table.objectives_of(family, prepared.meta)  # a Pareto search's: several
        self.stop, self.verbose = stop, verbose  # search_progress.Stop: Ctrl-C, --time-budget
        self._last_model, self._last_metrics, self._heartbeat = None, {}, None
        self.reports_epochs, self._pruned = reports_epochs, None  # the Optuna study: each epoch to the oracle, pruning
        self.models = models  # the artifact store of the kept trials' models (runners/model_store.py), or None
        # Keras Tuner prints "Reloading Tuner from ..." when it resumes; the suite says "resuming ..." itself.
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            super().__init__(oracle=oracle, hypermodel=hypermodel, directory=str(out_dir),
                             project_name="keras_tuner", **kwargs)
        for line in said.getvalue().splitlines():
            if not line.startswith("Reloading Tuner from"):
                logger.info(line)

    def is_worker(self):
        """A worker of a chief elsewhere: Keras Tuner's own test (keras_tuner's dist_utils), on its variables."""
        return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        if self.is_worker():
            from lyrics_cifar_search.runners.keras_search.distributed import Heartbeat  # gRPC: only when workers run
            self._heartbeat = Heartbeat(self.oracle, trial.trial_id)

    def run_trial(self, trial, *args, **kwargs):
        try:
            return self._run_trial(trial)
        except OSError as e:  # the disk refused a write: not the configuration failing
            raise WriteFailed.of(e) from e
        except (kt.errors.FatalError, kt.errors.FailedTrialError, KeyboardInterrupt):
            raise
        except Exception as e:
            if search_spaces.is_study_family(self.family.name) or not self._is_fixed(trial):
                raise  # a configuration that failed (FAIL, with its error), the search goes on
            # a family of the user's own whose defaults (its fixed first trials) fail is broken: said once
            raise FamilyFailed.of(self.family, e, number(trial)) from None

    def _is_fixed(self, trial):
        """One of the family's fixed first trials: the study oracle knows (a fixed trial run again after a kill
        has a later id); Keras Tuner's own oracles number trials in start order."""
        if hasattr(self.oracle, "is_fixed"):
            return self.oracle.is_fixed(trial.trial_id)
        return number(trial) < len(self.family.first_trials)

    def _run_trial(self, trial):
        failpoint("trial-started")
        hp = trial.hyperparameters
        extra = []
        if self.tensorboard:
            extra.append(TrialBoard(Path(self.tensorboard) / self.out_dir.name / f"trial_{number(trial)}", hp,
                                    number(trial)))
        stop = StopAtDeadline(self.stop) if self.stop.hard and self.stop.deadline else None
        self._pruned = None
        if self.reports_epochs:
            self._pruned = ReportEachEpoch(self.oracle, trial.trial_id, self.objective[0],
                                           n_val=len(keras.tree.flatten(self.prepared.x_val)[0]),
                                           restored=self.family.patience is not None)
            extra.append(self._pruned)
        model, metrics = train(self.family, self.hypermodel, hp, self.prepared,
                               epochs=hp.values.get("tuner/epochs", self.epochs),
                               seed=self.seed + int(trial.trial_id),
                               history_path=self.out_dir / "histories" / f"trial_{number(trial)}.csv",
                               callbacks=extra + ([stop] if stop else []), verbose=self.verbose,
                               label=f"[{self.family.name}] trial {number(trial)}")
        if stop is not None and stop.stopped:
            metrics["stopped_by_time_budget"] = 1  # its epochs_run is short of the budget
        if len(self.objectives) > 1:  # a Pareto search: the costs it weighs
            metrics.update(costs(model, [n for n, _ in self.objectives[1:]], self.prepared.x_val, metrics))
        self._last_model = model
        # None cannot travel to a chief over gRPC; a missing metric is an empty cell anyway
        self._last_metrics = {k: v for k, v in metrics.items() if v is not None}
        return self._last_metrics

    def on_trial_end(self, trial):
        model, self._last_model = self._last_model, None
        metrics, self._last_metrics = self._last_metrics, {}  # empty if the trial failed
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        objective = self.objective
        staged = None
        if trial.status == TrialStatus.COMPLETED and ((self._pruned is not None and self._pruned.pruned)
                                            or metrics.get("stopped_by_time_budget")):
            # pruned, or cut short by --time-budget-hard (its value is not from the full budget): recorded as
            # PRUNED with its epochs, never a best/ candidate
            trial.status = TrialStatus.STOPPED
        elif trial.status == TrialStatus.COMPLETED and not trials_table.is_score(metrics.get(objective[0])):
            # (a chief refuses it complete)
            trial.status, trial.message = TrialStatus.FAILED, f"no {objective[0]} value"
        if trial.status == TrialStatus.COMPLETED and model is not None:  # what it leaves: runners/trial_end.py
            values = user_values(trial.hyperparameters.values)
            meta = trial_end.model_meta(self.prepared.meta, number(trial), values, metrics, "model.keras",
                                        int(model.count_params()),
                                        max_epochs=trial.hyperparameters.values.get("tuner/epochs", self.epochs))
            # the baseline (every hyperparameter it declared at its default) is kept beside best/, and so is
            # any trial the family names in kept_trials (cifar_cnn's study skip model, the transfer's source)
            kept = [folder for folder, overrides in ((best_store.BASELINE, {}), *self.family.kept_trials.items())
                    if are_defaults(values, trial.hyperparameters.space, overrides)]
            staged = trial_end.stage(
                self.out_dir, number(trial), lambda d: self._save_model(model, d), meta, self.prepared.artifacts,
                objectives=self.objectives, metrics=metrics, kept_folders=kept, models=self.models,
                study=self.oracle.study if self.models is not None else None,
                trial=self.oracle._optuna_trial(trial.trial_id) if self.models is not None else None,
                is_baseline=self.models is not None and self.oracle.is_baseline(trial.trial_id))
        try:
            super().on_trial_end(trial)  # the oracle records the trial and saves its state
        finally:
            failpoint("trial-recorded")
            trial_end.settle(self.out_dir, staged, status_of(trial) == Status.COMPLETE, self.objectives,
                             self.oracle.study if self.models is not None else None, self.models)
            if self.is_worker():  # the chief writes trials.csv
                best = best_store.best_meta(self.out_dir)
                score = metrics.get(objective[0])
                logger.info(f"[{self.family.name} {self.tuner_id}] trial {number(trial)} {status_of(trial)}"
                            + (f": {objective[0]} {score:.4f}" if score is not None else "")
                            + (f" | best {best['metrics'][objective[0]]:.4f} (trial {best['trial_id']})" if best
                               else ""))
            else:
                self.record_trial(number(trial), status_of(trial), metrics.get(objective[0]))

    def record_trial(self, trial_id, status, score):
        """A trial the study has recorded: trials.csv rewritten from the study, and its progress line."""
        trial_end.write_record(self.oracle.study, self.out_dir, self.progress, trial_id, status, score,
                               default_values(self.oracle.hyperparameters.space))

    def pre_create_trial(self):
        if self.stop.requested:
            raise KeyboardInterrupt  # Ctrl-C: the finished trials are recorded; stop before the next
        if self.stop.out_of_time():
            raise BudgetReached  # --time-budget: no new trial starts
        if not self.is_worker() and trials_table.failed_in_a_row([status_of(self.oracle.trials[t])
                                                              for t in self.oracle.end_order]):
            raise TooManyFailures(self.trial_rows()[-1]["error"])

    def reconcile(self):
        """After a kill: finish what the last run left half-done, rewrite trials.csv."""
        objective = self.objective
        oracle = self.oracle
        # A kill between a new trial's trial.json and the oracle's own state leaves a trial the
        # oracle never started: it would take a --max-trials slot forever. It never ran: drop it.
        for tid in [t for t in oracle.trials if t not in oracle.start_order]:
            del oracle.trials[tid]
        # A trial's folder and history with no trial in the oracle: the cut attempt of a trial that runs again
        # under a new id (the study oracle), or a first trial killed before Keras Tuner's state was saved
        ids = {number(t) for t in oracle.trials}
        remove_trial_files(self.project_dir, lambda n: n not in ids)
        # A kill after Keras Tuner saved an ended trial but before it took it off its ongoing trials: its reload
        # put the trial up to run again. It has ended (end_order): it does not run twice.
        queue = compat.retry_queue(oracle)
        queue[:] = [t for t in queue if t not in oracle.end_order]
        finished = {number(tid): metrics_of(t).get(objective[0]) for tid, t in oracle.trials.items()
                    if status_of(t) == Status.COMPLETE}
        bad = [tid for tid, v in finished.items() if not trials_table.is_score(v)]
        if bad:
            raise UserError(f"the search state in {self.out_dir / 'keras_tuner'} is damaged (trial {bad[0]}'s "
                            f"{objective[0]} is not a number); start again with --fresh")
        best_store.reconcile_best(self.out_dir, finished, self.objectives)
        oracle.record_missing()  # a kill between Keras Tuner's state and the study's
        if self.oracle.trials:
            record.write_table(self.oracle.study, self.out_dir)

    def _save_model(self, model, folder):
        model.save(folder / "model.keras")
        if self.family.save_extras is not None:  # e.g. sample reconstructions as a PNG
            self.family.save_extras(model, self.prepared, folder)

    def trial_rows(self):
        """trials.csv's rows: from the search's study, the record of every trial (runners/record.py)."""
        return record.rows(self.oracle.study)


def costs(model: keras.Model, names: Sequence[str], x_val: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """A Pareto search's costs of a trained model: params (its weights), predict_ms (predicting one validation
    example: the median of 5 calls after a first), train_s (the trial's training time)."""
    out: dict[str, Any] = {}
    if "params" in names:
        out["params"] = int(model.count_params())
    if "predict_ms" in names:
        one = keras.tree.map_structure(lambda a: a[:1], as_model_takes(model, x_val))
        out["predict_ms"] = trials_table.median_ms(lambda: model.predict_on_batch(one))
    if "train_s" in names:
        out["train_s"] = metrics["duration_s"]
    return out


def scored_key(objective: str) -> str:
    """The epoch log that holds an objective as the trial is scored on it: val_loss is the suite's validation
    log-loss (val_log_loss, whatever loss the trial trains on: cifar_cnn searches focal, hinge, ...), not
    Keras's val_loss, which is the trial's own training loss."""
    return "val_log_loss" if objective == "val_loss" else objective


def standard_error(objective: str, row: dict[str, Any], n: int) -> Optional[float]:
    """The standard error of `objective` in an epoch's logs `row` over n validation examples (None if unknown):
    accuracy and macro-F1 binomial, sqrt(v(1 - v) / n) (for macro-F1 an approximation); log-loss from the
    spread of the per-example losses; otherwise the family's own "<objective>_se" (the autoencoder's)."""
    value = row.get(scored_key(objective))
    if value is None or not n:
        return None
    if objective in ("val_accuracy", "val_macro_f1"):
        return math.sqrt(max(value * (1 - value), 0.0) / n)
    if objective == "val_loss" and "val_log_loss_sq" in row:
        return math.sqrt(max(row["val_log_loss_sq"] - value ** 2, 0.0) / n)
    return row.get(objective + "_se")


class ReportEachEpoch(keras.callbacks.Callback):
    """The Optuna study (the default tuner): each epoch, the value the trial would be scored on if it ended there,
    to the oracle (the study's learning curve; over gRPC from a worker), with its standard error. With early
    stopping's restore (restored=True) a trial is scored at its lowest-val_loss epoch, so that is the epoch
    whose value is sent; without, the last. The value told at the end is then the last one sent.
    When the oracle answers "STOPPED", the pruner stopped the trial: training ends at this epoch.

    Not optuna_integration's KerasPruningCallback: the trial lives in Keras Tuner's oracle (in a chief, over
    gRPC, with workers), which this reports to, and it sends the scored epoch's value, not the last epoch's."""

    def __init__(self, oracle, trial_id, objective, n_val=0, restored=True):
        super().__init__()
        self.oracle, self.trial_id, self.objective, self.pruned = oracle, trial_id, objective, None
        self.n_val, self.restored = n_val, restored
        self.step, self.warned, self._scored = 0, False, None

    def on_train_begin(self, logs=None):
        self._scored = None  # a family that fits twice (fine-tuning) is scored on its last fit

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if logs.get(scored_key(self.objective)) is None:
            if not self.warned:  # as KerasPruningCallback warns: no pruning and no learning curve without it
                self.warned = True
                warn(f"warning: the epoch logs have no {scored_key(self.objective)}: the trial's "
                                    "learning curve is not recorded and it cannot be pruned")
            return
        loss = logs.get("val_loss", math.inf)
        if not self.restored or self._scored is None or loss < self._scored[0]:
            self._scored = (loss, dict(logs))
        row = self._scored[1]
        se = standard_error(self.objective, row, self.n_val)
        report = {EPOCH + self.objective: float(row[scored_key(self.objective)])}
        if se is not None:
            report[SE] = float(se)
        answer = self.oracle.update_trial(self.trial_id, report, step=self.step)
        self.step += 1  # steps run on across fits: each epoch trained is one step of the learning curve
        if answer.status == TrialStatus.STOPPED:
            self.pruned = epoch + 1  # epochs trained
            self.model.stop_training = True
