"""Keras Tuner engine: a family's HyperModel searched by a Keras Tuner oracle.

The oracle (random, bayesian or hyperband) proposes hyperparameters and keeps
its state under results/<family>/keras_tuner/, which is what makes a re-run
resume. `SuiteTuner.run_trial` trains one model and returns its validation
metrics; `on_trial_end` keeps the best model and rewrites trials.csv.

Choices, noted:
- The first trial of a new search runs every hyperparameter's default (the
  earlier study's model): `BaselineFirst` answers the oracle's first request
  for random values with the defaults.
- Keras Tuner's own per-epoch checkpoints are not written: the suite saves
  only the best model, after its trial, in `.keras` format.
- Hyperband trains each trial from scratch for its `tuner/epochs` budget
  instead of reloading the checkpoint of the trial it continues.
- Early stopping on validation loss (patience 5) restores the best epoch's
  weights, so the scores and the saved model are those of that epoch.
"""

import json
import math
import time
from pathlib import Path

import keras
import keras_tuner as kt
from keras_tuner.src import utils as kt_utils

from runners import results
from study_data import UserError, atomic


def _save_json_atomically(path, obj):
    text = json.dumps(obj)
    atomic.write_text(path, text)
    return text


# Keras Tuner writes its oracle and trial state with a plain open(); a kill
# mid-write would leave truncated JSON that stops every later resume. All its
# state goes through utils.save_json, so that one function is made atomic.
kt_utils.save_json = _save_json_atomically


def default_values(space):
    """The active hyperparameters of a space, each at its default."""
    hps = kt.HyperParameters()
    values = {}
    for hp in space:
        hps.merge([hp])
        if hps.is_active(hp):
            values[hp.name] = hp.default
    return values


class BaselineFirst:
    """Oracle mixin: the first trial of a new search is the defaults.

    A family may ask for more fixed first trials (FIRST_TRIALS, each a set of
    overrides of the defaults), e.g. cifar_transfer's from-scratch reference.
    """

    first_trials = ({},)

    def _random_values(self):
        n = len(self._tried_so_far)
        if n < len(self.first_trials):
            values = default_values(self.hyperparameters.space)
            values.update(self.first_trials[n])
            return values
        return super()._random_values()


class RandomOracle(BaselineFirst, kt.oracles.RandomSearchOracle):
    pass


class BayesianOracle(BaselineFirst, kt.oracles.BayesianOptimizationOracle):
    pass


class HyperbandOracle(BaselineFirst, kt.oracles.HyperbandOracle):
    pass


def make_oracle(tuner, max_trials, epochs, seed, objective=results.OBJECTIVE):
    objective = kt.Objective(*objective)
    if tuner == "random":
        oracle = RandomOracle(objective=objective, max_trials=max_trials, seed=seed)
    elif tuner == "bayesian":
        oracle = BayesianOracle(objective=objective, max_trials=max_trials, seed=seed)
    elif tuner == "hyperband":
        # hyperband_iterations=None: brackets repeat until --max-trials, which stops the search
        oracle = HyperbandOracle(objective=objective, max_epochs=epochs, factor=3, hyperband_iterations=None,
                                 seed=seed)
    else:
        raise ValueError(tuner)
    # Hyperband has no max_trials of its own; the oracle honours the attribute.
    oracle.max_trials = max_trials
    return oracle


class EpochLog(keras.callbacks.Callback):
    """Writes the trial's per-epoch curves (Keras Tuner keeps only the best epoch)."""

    def __init__(self, path, epochs):
        super().__init__()
        self.path, self.epochs, self.rows = Path(path), epochs, []

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.rows.append({"epoch": epoch + 1, **logs})
        header = list(self.rows[0])
        lines = [",".join(header)] + [",".join(repr(r.get(k, "")) for k in header) for r in self.rows]
        atomic.write_text(self.path, "\n".join(lines) + "\n")
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy"))
        print(f"    epoch {epoch + 1}/{self.epochs}  {shown}", flush=True)

    @property
    def nan_epoch(self):
        for r in self.rows:
            if not math.isfinite(r.get("loss", 0.0)):
                return r["epoch"]
        return None

    @property
    def best_epoch(self):
        finite = [r for r in self.rows if math.isfinite(r.get("val_loss", math.inf))]
        return min(finite, key=lambda r: r["val_loss"])["epoch"] if finite else None


def train(family, hypermodel, hp, p, *, epochs, seed, history_path, callbacks=()):
    """Build and train one configuration; return the model and its validation metrics.

    Used by every trial, and again by the analysis to retrain a best
    configuration with other seeds.
    """
    keras.backend.clear_session()  # no graph or memory carried over between trials
    keras.utils.set_random_seed(seed)
    start = time.time()
    model = hypermodel.build(hp)
    log = EpochLog(history_path, epochs)
    callbacks = [log, keras.callbacks.TerminateOnNaN(),
                 keras.callbacks.EarlyStopping(monitor="val_loss", patience=getattr(family, "PATIENCE", 5),
                                               restore_best_weights=True), *callbacks]
    hypermodel.fit(hp, model, p.x_train, p.y_train, validation_data=(p.x_val, p.y_val),
                   epochs=epochs, callbacks=callbacks, verbose=0)
    if log.nan_epoch is not None:
        raise kt.errors.FailedTrialError(f"loss became NaN at epoch {log.nan_epoch}")
    if hasattr(family, "evaluate"):  # e.g. reconstruction error for an autoencoder
        metrics = family.evaluate(model, p.x_val, p.y_val)
    else:
        probs = model.predict(p.x_val, batch_size=1024, verbose=0)
        metrics = results.classification_metrics(p.y_val, probs, len(p.label_names))
    metrics.update(epochs_run=len(log.rows), best_epoch=log.best_epoch, duration_s=round(time.time() - start, 3))
    return model, metrics


class SuiteTuner(kt.Tuner):
    def __init__(self, oracle, hypermodel, *, family, prepared, out_dir, epochs, seed, progress, tensorboard=None,
                 **kwargs):
        self.family, self.prepared, self.out_dir, self.tensorboard = family, prepared, Path(out_dir), tensorboard
        self.epochs, self.seed, self.progress = epochs, seed, progress
        self._last_model = None
        super().__init__(oracle=oracle, hypermodel=hypermodel, directory=str(out_dir),
                         project_name="keras_tuner", **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        extra = []
        if self.tensorboard:
            extra.append(keras.callbacks.TensorBoard(log_dir=self.tensorboard))
            # Keras Tuner's own: one log folder per trial, with its hyperparameters for the HParams view
            self._configure_tensorboard_dir(extra, trial)
        model, metrics = train(self.family, self.hypermodel, hp, self.prepared,
                               epochs=hp.values.get("tuner/epochs", self.epochs),
                               seed=self.seed + int(trial.trial_id),
                               history_path=self.out_dir / "histories" / f"trial_{trial.trial_id}.csv",
                               callbacks=extra)
        self._last_model = model
        return metrics

    def on_trial_end(self, trial):
        model, self._last_model = self._last_model, None
        metrics = _metrics(trial)  # reported by run_trial through oracle.update_trial
        objective = results.objective_of(self.family)
        candidate = None
        if trial.status == "COMPLETED" and model is not None and results.is_better(metrics, self.out_dir, objective):
            values = _user_values(trial.hyperparameters.values)
            meta = {**self.prepared.meta, "trial_id": trial.trial_id, "hyperparameters": values,
                    "metrics": metrics, "model_file": "model.keras",
                    "max_epochs": trial.hyperparameters.values.get("tuner/epochs", self.epochs),
                    "parameter_count": int(model.count_params())}
            candidate = results.stage_best(self.out_dir, trial.trial_id, lambda d: self._save_model(model, d), meta,
                                           self.prepared.artifacts)
        try:
            super().on_trial_end(trial)  # the oracle records the trial and saves its state
        finally:
            results.crash_point("trial-recorded")
            if candidate is not None and _status(trial) == "COMPLETE":
                results.promote(self.out_dir, candidate, objective)
            rows = self.trial_rows()
            results.write_trials_csv(self.out_dir, rows)
            done = [r for r in rows if r["status"] != "RUNNING"]
            best = results.best_meta(self.out_dir)
            self.progress.trial_done(len(done), _status(trial), metrics.get(objective[0]),
                                     best and best["metrics"][objective[0]], best and best["trial_id"])

    def pre_create_trial(self):
        if results.STOP.is_set():
            raise KeyboardInterrupt  # Ctrl-C: the finished trials are recorded; stop before the next

    def reconcile(self):
        """After a kill: finish what the last run left half-done, rewrite trials.csv."""
        objective = results.objective_of(self.family)
        finished = {tid: _metrics(t).get(objective[0]) for tid, t in self.oracle.trials.items()
                    if _status(t) == "COMPLETE"}
        results.reconcile_best(self.out_dir, finished, objective)
        if self.oracle.trials:
            results.write_trials_csv(self.out_dir, self.trial_rows())

    def _save_model(self, model, folder):
        model.save(folder / "model.keras")
        if hasattr(self.family, "save_extras"):  # e.g. sample reconstructions as a PNG
            self.family.save_extras(model, self.prepared, folder)

    def trial_rows(self):
        oracle = self.oracle
        defaults = default_values(oracle.hyperparameters.space)
        rows = []
        for tid in oracle.start_order:
            t = oracle.trials[tid]
            values = _user_values(t.hyperparameters.values)
            # BaselineFirst made the first trial the defaults; hyperparameters
            # first seen in later trials are not in its values, hence the subset test.
            is_baseline = tid == oracle.start_order[0] and all(defaults.get(k) == v for k, v in values.items())
            if "tuner/epochs" in t.hyperparameters.values:
                values["epochs_budget"] = t.hyperparameters.values["tuner/epochs"]
            error = (t.message or "").strip().splitlines()[-1:] if _status(t) == "FAIL" else []
            rows.append(results.trial_row(tid, _status(t), is_baseline, values, _metrics(t),
                                          error[0] if error else ""))
        return rows


def _user_values(values):
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def _status(trial):
    return {"COMPLETED": "COMPLETE", "FAILED": "FAIL", "INVALID": "FAIL"}.get(trial.status, trial.status)


def _metrics(trial):
    return {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}


def finished_count(out_dir):
    """Trials that a previous run of this search finished (for the resume message)."""
    trial_files = list((Path(out_dir) / "keras_tuner").glob("trial_*/trial.json"))
    return len(trial_files)


def run(family, prepared, out_dir, *, max_trials, epochs, tuner, seed, tensorboard=None):
    keras.utils.set_random_seed(seed)
    before = finished_count(out_dir)
    objective = results.objective_of(family)
    progress = results.Progress(family.NAME, max_trials, before, objective)
    try:
        t = SuiteTuner(make_oracle(tuner, max_trials, epochs, seed, objective), family.HyperModel(prepared.spec),
                       family=family, prepared=prepared, out_dir=out_dir, epochs=epochs, seed=seed,
                       progress=progress, tensorboard=tensorboard)
    except (ValueError, KeyError) as e:  # json errors are ValueErrors
        raise UserError(f"the search state in {Path(out_dir) / 'keras_tuner'} is damaged ({type(e).__name__}); "
                        f"start again with --fresh") from None
    if before:
        results.log(f"resuming {family.NAME}: {before} trials on record, running up to {max_trials} in all")
    t.oracle.max_trials = max_trials  # a resumed search may be given a new total
    t.oracle.first_trials = getattr(family, "FIRST_TRIALS", BaselineFirst.first_trials)
    t.reconcile()
    try:
        t.search(verbose=0)
    except RuntimeError as e:
        if "consecutive failures" not in str(e):
            raise
        last = t.trial_rows()[-1]
        results.log(f"{family.NAME}: {t.oracle.max_consecutive_failed_trials} trials failed in a row "
                    f"(last: {last['error']}); stopping the search")
    return t.trial_rows()
