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

Several workers use Keras Tuner's own chief/worker mode (see `serve`): the
chief holds the oracle and writes trials.csv; each worker asks it for
trials, trains them, and promotes its model to best/ if better. All of them
share the results folder.
"""

import ctypes
import gc
import itertools
import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import keras
import keras_tuner as kt
from keras_tuner.src import utils as kt_utils

from runners import results
from suite_common import UserError, atomic


# On the JAX or PyTorch backend Keras still imports TensorFlow whenever it is
# installed, to seed it (for tf.data pipelines) and, when saving a model, to
# check for TensorFlow shapes: 2.3 s in a search's first trial here, for nothing
# this suite uses. Unless something has imported it already, Keras is told it is
# absent, as it is on a machine without it (the lent GPU machines).
if keras.backend.backend() != "tensorflow" and "tensorflow" not in sys.modules:
    from keras.src.utils import module_utils
    if module_utils.tensorflow._available is None:
        module_utils.tensorflow._available = False


def _save_json_atomically(path, obj):
    text = json.dumps(obj)
    new_trial = str(path).endswith("trial.json") and not os.path.exists(path)
    atomic.write_text(path, text)
    if new_trial:
        results.crash_point("trial-file-written")  # a new trial's file, before the oracle's state records it
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
    def _random_trial(self, trial_id, bracket):
        # Like for like: the baseline (and a family's other fixed first trials)
        # trains with the full epoch budget, not the first bracket's share, so
        # "best vs baseline" never compares unequal training.
        fixed = len(self._tried_so_far) < len(self.first_trials)
        result = super()._random_trial(trial_id, bracket)
        if fixed and result and "values" in result:
            result["values"]["tuner/epochs"] = self.max_epochs
        return result


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
        self.phase_start = 0  # a family that fits twice (fine-tuning): the last fit's weights are kept

    def on_train_begin(self, logs=None):
        self.phase_start = len(self.rows)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.rows.append({"epoch": epoch + 1, **logs})
        header = list(self.rows[0])
        lines = [",".join(header)] + [",".join(repr(r.get(k, "")) for k in header) for r in self.rows]
        atomic.write_text(self.path, "\n".join(lines) + "\n")
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy"))
        print(f"    epoch {epoch + 1}/{self.epochs}  {shown}", flush=True)
        if not math.isfinite(logs.get("loss", 0.0)):
            self.model.stop_training = True  # the trial has failed; see nan_epoch

    @property
    def nan_epoch(self):
        for r in self.rows:
            if not math.isfinite(r.get("loss", 0.0)):
                return r["epoch"]
        return None

    def best_epoch(self, restored=True):
        """The epoch whose weights the model holds: with early stopping's restore, the last fit's
        lowest validation loss (an earlier fit's weights were trained on); without, the last."""
        if not restored:
            return self.rows[-1]["epoch"] if self.rows else None
        finite = [r for r in self.rows[self.phase_start:] if math.isfinite(r.get("val_loss", math.inf))]
        return min(finite, key=lambda r: r["val_loss"])["epoch"] if finite else None


def fuse_train_steps(model, n_train, batch_size, max_steps=64):
    """JAX on an accelerator: run up to `max_steps` training steps per compiled call.

    A small model on a GPU spends most of each step on launching it from
    Python. Here Keras hands the train function k batches at a time
    (steps_per_execution), which are stacked on the device and run by one
    compiled lax.scan over Keras's own train_step: the same updates, in the same
    order, from one launch. k divides the number of full batches, so every
    chunk has the same shape (one compilation); a smaller last batch runs
    alone, as in plain Keras. Returns k (1: nothing changed).
    """
    import jax
    full = n_train // batch_size
    k = max((d for d in range(2, max_steps + 1) if full % d == 0), default=1)
    if k == 1:
        return 1

    def k_steps(state, batches):
        def body(state, data):
            logs, state = model.train_step(state, data)
            return state, logs
        state, logs = jax.lax.scan(body, state, batches)
        return jax.tree.map(lambda v: v[-1], logs), state  # the logs after the last step, as Keras reports

    fused = jax.jit(k_steps, donate_argnums=0)
    single = jax.jit(model.train_step, donate_argnums=0)

    def train_function(state, iterator):
        batches = list(itertools.islice(iterator, k))  # this chunk: k batches, fewer at the epoch's end
        if not batches:
            raise StopIteration  # as Keras's own train function does; fit() ends the epoch
        if len(batches) == k and len({jax.tree.leaves(b)[0].shape for b in batches}) == 1:
            return fused(state, jax.tree.map(lambda *xs: jax.numpy.stack(xs), *batches))
        for data in batches:
            logs, state = single(state, data)
        return logs, state

    model.steps_per_execution = k
    model.train_function = train_function  # fit() builds its own only when this is unset
    return k


# Fusing costs one longer compilation per trial (about 7 s more for cifar_cnn
# on an H100) and saves about 1.5 ms per step there: it pays from a few
# thousand steps per trial (a full block-1 trial is about 25,000).
FUSE_MIN_STEPS = 4000


def graph_train_steps(model, warmup=3):
    """PyTorch on a CUDA GPU: replay each training step as one recorded CUDA graph.

    PyTorch runs Keras's train_step eagerly: every layer, loss, metric and
    optimizer update is launched from Python, which dominates a small model's
    step on a GPU. Here the first `warmup` batches train eagerly (on a side
    stream, as PyTorch's CUDA-graph notes ask), the next is recorded once with
    torch.cuda.graph, and every later batch of that shape is copied into the
    recorded input buffers and replayed: the same kernels, the same in-place
    updates of weights, optimizer slots, metrics and BatchNorm statistics, from
    one launch. Python numbers Keras turns into GPU tensors inside the step
    (Adam's betas, the batch size for the loss tracker) become constants of the
    graph, as they are of a traced step on JAX or TensorFlow. A batch of
    another shape (the smaller last one) trains eagerly. If recording fails
    (an operation that waits for the GPU, e.g. seeded random layers), one
    warning says why and training continues eagerly. Returns the train
    function; its `.captured` says whether a graph is in use.
    """
    import warnings

    import torch

    eager = model.train_step
    side = torch.cuda.Stream()
    state = {"seen": 0, "shapes": None, "graph": None, "failed": False}

    def as_device_constant(data, dtype=None, device=None):
        # While recording: Python numbers (and small tuples of them, e.g. a
        # shape) bound for the GPU become fill kernels of the graph, since a
        # copy from host memory cannot be recorded.
        if device is None or torch.device(device).type != "cuda" or isinstance(data, torch.Tensor):
            return as_tensor(data, dtype=dtype, device=device)
        host = as_tensor(data, dtype=dtype)
        if host.numel() > 256:
            return as_tensor(data, dtype=dtype, device=device)  # fails the recording: trains eagerly
        values = [torch.full((), v, dtype=host.dtype, device=device) for v in host.reshape(-1).tolist()]
        if not values:
            return torch.empty(host.shape, dtype=host.dtype, device=device)
        return values[0] if host.ndim == 0 else torch.stack(values).reshape(host.shape)

    as_tensor = torch.as_tensor

    def record(batch, leaves):
        inputs = [None if t is None else t.to("cuda", copy=True) for t in leaves]
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        torch.as_tensor = as_device_constant
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                logs = eager(keras.tree.pack_sequence_as(batch, inputs))
        finally:
            torch.as_tensor = as_tensor
        state.update(graph=graph, inputs=inputs, logs=logs)
        train_function.captured = True
        graph.replay()  # recording ran nothing: this batch's step
        return logs

    def train_function(data):
        batch = data[0]  # Keras hands a list of steps_per_execution (= 1) batches
        leaves = keras.tree.flatten(batch)  # x, y and sample weights; None where absent
        shapes = [None if t is None else tuple(t.shape) for t in leaves]
        if state["shapes"] is None:
            state["shapes"] = shapes
        if (state["failed"] or shapes != state["shapes"]
                or not all(t is None or isinstance(t, torch.Tensor) for t in leaves)):
            return eager(batch)
        if state["graph"] is not None:
            for buffer, t in zip(state["inputs"], leaves):
                if t is not None:
                    buffer.copy_(t, non_blocking=True)
            state["graph"].replay()
            return state["logs"]
        if state["seen"] < warmup:
            state["seen"] += 1
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                logs = eager(batch)
            torch.cuda.current_stream().wait_stream(side)
            return logs
        try:
            return record(batch, leaves)
        except Exception as e:  # noqa: BLE001 - any failure to record: train eagerly instead
            state.update(failed=True, graph=None)
            train_function.captured = False
            torch.cuda.synchronize()
            warnings.warn(f"training without CUDA graphs: recording the train step failed "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})", stacklevel=2)
            return eager(batch)

    train_function.captured = False
    model.train_function = train_function  # fit() builds its own only when this is unset
    return train_function


def _graph_steps():
    """Record train steps as CUDA graphs? PyTorch with a CUDA GPU, unless SEARCH_SUITE_FUSE_STEPS=0."""
    if keras.backend.backend() != "torch" or os.environ.get("SEARCH_SUITE_FUSE_STEPS") == "0":
        return False
    import torch
    return torch.cuda.is_available()


def _fuse_steps(steps):
    """Fuse train steps? JAX on a GPU/TPU for a long enough trial, unless SEARCH_SUITE_FUSE_STEPS=0/1 says."""
    flag = os.environ.get("SEARCH_SUITE_FUSE_STEPS")
    if keras.backend.backend() != "jax":
        return False
    if flag is not None:
        return flag == "1"
    import jax
    return jax.default_backend() != "cpu" and steps >= FUSE_MIN_STEPS


def _free_last_trial():
    """Free what the last trial left behind: Keras's state, and what clear_session misses.

    TensorFlow: tracing a train step registers a gradient function for its
    all-reduce of the gradients ("CustomGradient-N") in a global registry that
    nothing empties; each holds that step's whole graph, and through it the
    model's variables and optimizer slots (tensorflow/tensorflow#97697,
    keras-team/keras#20245): cifar_cnn kept about 50 MB per trial. Between
    trials no traced step is alive, so none can be needed again. (A private
    registry: if it moves, this does nothing.)
    All backends: glibc keeps freed heap memory (after an XLA compilation or a
    trial with large activations, hundreds of MB; runners/__init__.py asks it
    to keep blocks for reuse); malloc_trim returns it.
    Not done: clearing JAX's compilation caches. They grew across trials
    only while augmented cifar_cnn models trained op by op, every op compiled
    and kept (search_spaces/_layers.py); clearing them cost 1.2-2.5x the
    search's time (README, "Performance").
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from tensorflow.python.framework import ops
        registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
        if isinstance(registry, dict):
            for name in [n for n in registry if n.startswith("CustomGradient-")]:
                del registry[name]
    if backend == "torch" and _nothing_compiled_by_dynamo():
        # clear_session also resets torch.compile's caches, and with a CUDA GPU that
        # reset imports torch._inductor (1.3 s on this CPU machine, once per process),
        # which bare fits never pay. Keras compiles with dynamo only when asked
        # (jit_compile=True); with nothing compiled there is nothing to reset.
        import torch._dynamo
        reset, torch._dynamo.reset = torch._dynamo.reset, lambda: None
        try:
            keras.backend.clear_session()
        finally:
            torch._dynamo.reset = reset
    else:
        keras.backend.clear_session()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to return
        pass


def _nothing_compiled_by_dynamo():
    """True when torch.compile has compiled no frame since the last reset (a private counter: if it
    moves, False, and clear_session resets as it always did)."""
    from torch._dynamo import convert_frame
    return getattr(convert_frame, "FRAME_COUNTER", None) == 0


def train(family, hypermodel, hp, p, *, epochs, seed, history_path, callbacks=()):
    """Build and train one configuration; return the model and its validation metrics.

    Used by every trial, and again by the analysis to retrain a best
    configuration with other seeds.
    """
    _free_last_trial()  # no graph or memory carried over between trials
    keras.utils.set_random_seed(seed)
    start = time.time()
    model = hypermodel.build(hp)
    n_train, batch_size = len(keras.tree.flatten(p.x_train)[0]), hp.values.get("batch_size")
    if batch_size and _fuse_steps(epochs * -(-n_train // batch_size)):
        fuse_train_steps(model, n_train, batch_size)
    elif _graph_steps():
        graph_train_steps(model)
    log = EpochLog(history_path, epochs)
    # No callback here looks at single batches (Keras's TerminateOnNaN does): a
    # per-batch hook makes Keras wait for every step's logs, which stalls a GPU.
    # A NaN loss stops training at the end of its epoch instead (EpochLog).
    patience = getattr(family, "PATIENCE", 5)  # None: no early stopping (the autoencoder, as the study)
    stopping = [] if patience is None else [keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True)]
    callbacks = [log, *stopping, *callbacks]
    hypermodel.fit(hp, model, p.x_train, p.y_train, validation_data=(p.x_val, p.y_val),
                   epochs=epochs, callbacks=callbacks, verbose=0)
    if log.nan_epoch is not None:
        raise kt.errors.FailedTrialError(f"loss became NaN at epoch {log.nan_epoch}")
    best_epoch = log.best_epoch(restored=bool(stopping))
    best = log.rows[best_epoch - 1] if best_epoch else {}
    if not hasattr(family, "evaluate") and {"val_accuracy", "val_log_loss", "val_macro_f1"} <= set(best):
        # EarlyStopping restored the weights of this epoch: its own validation scores
        # (search_spaces/_metrics.py) are the model's, with no second pass.
        metrics = {"val_accuracy": best["val_accuracy"], "val_loss": best["val_log_loss"],
                   "val_macro_f1": best["val_macro_f1"]}
    else:
        # Batches of the training batch size: the shapes fit() already compiled and,
        # on a GPU, autotuned for validation (a new batch shape costs seconds there).
        outputs = model.predict(p.x_val, batch_size=batch_size or 256, verbose=0)
        if hasattr(family, "evaluate"):  # e.g. reconstruction error for an autoencoder
            metrics = family.evaluate(outputs, p.x_val, p.y_val)
        else:
            metrics = results.classification_metrics(p.y_val, outputs, len(p.label_names))
    metrics.update(epochs_run=len(log.rows), best_epoch=best_epoch, duration_s=round(time.time() - start, 3))
    return model, metrics


class BudgetReached(Exception):
    """--time-budget has passed: the search stops before its next trial."""


class StopAtDeadline(keras.callbacks.Callback):
    """--time-budget-hard: the trial in progress stops at the first epoch end after the deadline."""

    def __init__(self, deadline):
        super().__init__()
        self.deadline, self.stopped = deadline, False

    def on_epoch_end(self, epoch, logs=None):
        if results.out_of_time(self.deadline):
            self.stopped = self.model.stop_training = True


class SuiteTuner(kt.Tuner):
    def __init__(self, oracle, hypermodel, *, family, prepared, out_dir, epochs, seed, progress, tensorboard=None,
                 deadline=None, hard_deadline=False, **kwargs):
        self.family, self.prepared, self.out_dir, self.tensorboard = family, prepared, Path(out_dir), tensorboard
        self.epochs, self.seed, self.progress = epochs, seed, progress
        self.objective = results.objective_of(family, prepared.meta)
        self.deadline, self.hard_deadline = deadline, hard_deadline
        self._last_model, self._last_metrics, self._heartbeat = None, {}, None
        super().__init__(oracle=oracle, hypermodel=hypermodel, directory=str(out_dir),
                         project_name="keras_tuner", **kwargs)

    def _get_tuner_fname(self):
        # Keras Tuner names this file after the tuner id, and reloads the oracle
        # only if it exists: one name for every non-worker run (single or chief),
        # so switching between them resumes the same search.
        if self._is_worker():
            return super()._get_tuner_fname()
        return os.path.join(str(self.project_dir), "tuner0.json")

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        if self._is_worker():
            self._heartbeat = Heartbeat(self.oracle, trial.trial_id)

    def run_trial(self, trial, *args, **kwargs):
        results.crash_point("trial-started")
        hp = trial.hyperparameters
        extra = []
        if self.tensorboard:
            extra.append(keras.callbacks.TensorBoard(log_dir=self.tensorboard))
            # Keras Tuner's own: one log folder per trial, with its hyperparameters for the HParams view
            self._configure_tensorboard_dir(extra, trial)
        stop = StopAtDeadline(self.deadline) if self.hard_deadline and self.deadline else None
        model, metrics = train(self.family, self.hypermodel, hp, self.prepared,
                               epochs=hp.values.get("tuner/epochs", self.epochs),
                               seed=self.seed + int(trial.trial_id),
                               history_path=self.out_dir / "histories" / f"trial_{trial.trial_id}.csv",
                               callbacks=extra + ([stop] if stop else []))
        if stop is not None and stop.stopped:
            metrics["stopped_by_time_budget"] = 1  # its epochs_run is short of the budget
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
            if self._is_worker():  # the chief writes trials.csv
                best = results.best_meta(self.out_dir)
                score = metrics.get(objective[0])
                print(f"[{self.family.NAME} {self.tuner_id}] trial {trial.trial_id} {_status(trial)}"
                      + (f": {objective[0]} {score:.4f}" if score is not None else "")
                      + (f" | best {best['metrics'][objective[0]]:.4f} (trial {best['trial_id']})" if best else ""),
                      flush=True)
            else:
                self.record_trial(_status(trial), metrics.get(objective[0]))

    def record_trial(self, status, score):
        """Rewrite trials.csv from the oracle and print a progress line."""
        name = self.objective[0]
        rows = self.trial_rows()
        results.write_trials_csv(self.out_dir, rows)
        done = [r for r in rows if r["status"] != "RUNNING"]
        # the best finished trial (with workers, its model may reach best/ a moment later)
        best = results.best_of(done, self.objective)
        self.progress.trial_done(len(done), status, score, best and best[name], best and best["trial_id"])

    def pre_create_trial(self):
        if results.STOP.is_set():
            raise KeyboardInterrupt  # Ctrl-C: the finished trials are recorded; stop before the next
        if results.out_of_time(self.deadline):
            raise BudgetReached  # --time-budget: no new trial starts

    def reconcile(self):
        """After a kill: finish what the last run left half-done, rewrite trials.csv."""
        objective = self.objective
        oracle = self.oracle
        # A kill between a new trial's trial.json and the oracle's own state leaves a trial the
        # oracle never started: it would take a --max-trials slot forever. It never ran: drop it.
        for tid in [t for t in oracle.trials if t not in oracle.start_order]:
            del oracle.trials[tid]
            shutil.rmtree(Path(oracle._project_dir) / f"trial_{tid}", ignore_errors=True)
        finished = {tid: _metrics(t).get(objective[0]) for tid, t in oracle.trials.items()
                    if _status(t) == "COMPLETE"}
        bad = [tid for tid, v in finished.items() if not results.is_score(v)]
        if bad:
            raise UserError(f"the search state in {self.out_dir / 'keras_tuner'} is damaged (trial {bad[0]}'s "
                            f"{objective[0]} is not a number); start again with --fresh")
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
    return {name: _last_value(trial, name) for name in trial.metrics.metrics}


def _last_value(trial, name):
    try:
        return trial.metrics.get_last_value(name)
    except (TypeError, ValueError):  # a value in the saved state that is not a number: damaged state
        return None


def finished_count(out_dir):
    """Trials that a previous run of this search finished (for the resume message)."""
    trial_files = list((Path(out_dir) / "keras_tuner").glob("trial_*/trial.json"))
    return len(trial_files)


def _freeze_heap():
    """Exempt what exists now (modules, data) from garbage collection.

    clear_session collects garbage before every trial, to free the last
    model; with the frameworks' millions of objects frozen, that takes
    milliseconds instead of about a third of a second."""
    gc.collect()
    gc.freeze()


def _check_buildable(family, prepared):
    """The baseline model builds from these flags and data (say so in one line if not, e.g. a sequence
    too short for valid convolutions), before any state is read or written."""
    hypermodel = family.HyperModel(prepared.spec)
    try:
        hypermodel.build(kt.HyperParameters())
    except Exception as e:  # noqa: BLE001 - any build error is the flags' or the data's
        raise UserError(f"{family.NAME} cannot build its model from these flags and data ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    finally:
        keras.backend.clear_session()


def _make_tuner(family, prepared, out_dir, *, max_trials, epochs, tuner, seed, tensorboard, progress, deadline=None,
                hard_deadline=False):
    _check_buildable(family, prepared)
    try:
        return SuiteTuner(make_oracle(tuner, max_trials, epochs, seed, results.objective_of(family, prepared.meta)),
                          family.HyperModel(prepared.spec), family=family, prepared=prepared, out_dir=out_dir,
                          epochs=epochs, seed=seed, progress=progress, tensorboard=tensorboard, deadline=deadline,
                          hard_deadline=hard_deadline)
    except (ValueError, KeyError, TypeError) as e:  # json errors are ValueErrors; wrong types in it TypeErrors
        raise UserError(f"the search state in {Path(out_dir) / 'keras_tuner'} is damaged ({type(e).__name__}); "
                        f"start again with --fresh") from None


def run(family, prepared, out_dir, *, max_trials, epochs, tuner, seed, tensorboard=None, chief=None,
        start_workers=None, deadline=None, hard_deadline=False):
    """Run the search here, or (chief=(ip, port)) serve its oracle to workers until it is done.

    deadline: time.time() after which no trial starts (--time-budget); hard_deadline: the trial in
    progress then stops at its next epoch end too."""
    _freeze_heap()
    keras.utils.set_random_seed(seed)
    before = finished_count(out_dir)
    progress = results.Progress(family.NAME, max_trials, before, results.objective_of(family, prepared.meta))
    t = _make_tuner(family, prepared, out_dir, max_trials=max_trials, epochs=epochs, tuner=tuner, seed=seed,
                    tensorboard=tensorboard, progress=progress, deadline=deadline, hard_deadline=hard_deadline)
    t.oracle.max_trials = max_trials  # a resumed search may be given a new total
    t.oracle.first_trials = getattr(family, "FIRST_TRIALS", BaselineFirst.first_trials)
    t.reconcile()
    if before:
        results.log(f"resuming {family.NAME}: {len(t.oracle.trials)} trials on record, running up to "
                    f"{max_trials} in all")
    if chief is not None:
        serve(t, chief, start_workers)
        return t.trial_rows()
    try:
        t.search(verbose=0)
    except BudgetReached:
        pass  # the CLI says so
    except RuntimeError as e:
        if "consecutive failures" not in str(e):
            raise
        last = t.trial_rows()[-1]
        results.log(f"{family.NAME}: {t.oracle.max_consecutive_failed_trials} trials failed in a row "
                    f"(last: {last['error']}); stopping the search")
    return t.trial_rows()


def run_worker(family, prepared, out_dir, *, epochs, tuner, seed, tensorboard=None):
    """A worker (KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP/PORT set): run the chief's trials until it says stop."""
    _freeze_heap()
    keras.utils.set_random_seed(seed)
    progress = results.Progress(family.NAME, 0, 0, results.objective_of(family, prepared.meta))
    t = _make_tuner(family, prepared, out_dir, max_trials=None, epochs=epochs, tuner=tuner, seed=seed,
                    tensorboard=tensorboard, progress=progress)
    t.oracle.__class__ = PatientClient
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    print(f"[{family.NAME} {t.tuner_id}] asking the chief at {address} for trials", flush=True)
    t.search(verbose=0)


# --- Keras Tuner's chief/worker mode -------------------------------------
# Keras Tuner's own server (keras_tuner.src.distribute.oracle_chief) is used
# with four changes, all in ChiefServicer: the chief writes trials.csv and a
# progress line when a trial ends; a worker that stops sending heartbeats has
# its trial handed to another worker; workers wait (IDLE) rather than stop
# while another's trial may still need retrying; and the chief counts failed
# trials itself (Keras Tuner's check raises inside the server).
import contextlib  # noqa: E402
import io  # noqa: E402

from keras_tuner.src import protos  # noqa: E402
from keras_tuner.src.engine import conditions  # noqa: E402
from keras_tuner.src.distribute import oracle_client  # noqa: E402
from keras_tuner.src.engine import trial as trial_module  # noqa: E402

_parent_to_proto = conditions.Parent.to_proto


def _quiet_parent_to_proto(self):
    # keras-tuner 1.4.8 left a debug print() in here: a stray line each time a
    # conditional hyperparameter travels between chief and worker
    with contextlib.redirect_stdout(io.StringIO()):
        return _parent_to_proto(self)


conditions.Parent.to_proto = _quiet_parent_to_proto

HEARTBEAT_S = 4  # a worker pings the chief this often while it trains
STALE_S = 20  # a trial whose worker has been silent this long goes to another worker
MAX_CONSECUTIVE_FAILURES = 3


class PatientClient(oracle_client.OracleClient):
    """Keras Tuner's client; waits a second before asking again when told IDLE (it asks in a tight loop)."""

    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        if trial.status == trial_module.TrialStatus.IDLE:
            time.sleep(1)
        return trial


class Heartbeat:
    """Asks the chief for the running trial every HEARTBEAT_S seconds: the chief reads that as 'alive'."""

    def __init__(self, client, trial_id):
        self._stop = threading.Event()
        request = protos.get_service().GetTrialRequest(trial_id=trial_id)

        def beat():
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    client.stub.GetTrial(request, timeout=HEARTBEAT_S)
                except Exception:  # the chief is busy or restarting: the next beat may get through
                    pass

        threading.Thread(target=beat, daemon=True).start()

    def stop(self):
        self._stop.set()


class ChiefServicer(protos.get_service_grpc().OracleServicer):
    def __init__(self, tuner, max_trials):
        from keras_tuner.src.distribute.oracle_chief import OracleServicer
        self.tuner, self.oracle, self.max_trials = tuner, tuner.oracle, max_trials
        self.base = OracleServicer(self.oracle)  # Keras Tuner's own request handlers
        self.lock = threading.Lock()  # one request at a time, as in Keras Tuner's server
        self.seen = {}  # trial id -> last time its worker was heard from
        self.stopping = False  # no new trials: the oracle said so, Ctrl-C, or too many failures
        self.oracle.max_consecutive_failed_trials = 10 ** 9  # counted here instead
        self.oracle.verbose = 0  # Keras Tuner's own display; the chief prints progress lines instead
        # A run stopped by older versions may have saved a finished trial as still running,
        # which the reload put up for retry: it is finished, so it does not run again.
        self.oracle._retry_queue = [t for t in self.oracle._retry_queue if t not in self.oracle.end_order]

    def GetSpace(self, request, context):
        with self.lock:
            return self.base.GetSpace(request, context)

    def UpdateSpace(self, request, context):
        with self.lock:
            return self.base.UpdateSpace(request, context)

    def UpdateTrial(self, request, context):
        with self.lock:
            self.seen[request.trial_id] = time.time()
            return self.base.UpdateTrial(request, context)

    def GetTrial(self, request, context):  # also the workers' heartbeat
        with self.lock:
            self.seen[request.trial_id] = time.time()
            return self.base.GetTrial(request, context)

    def GetBestTrials(self, request, context):
        with self.lock:
            return self.base.GetBestTrials(request, context)

    def CreateTrial(self, request, context):
        with self.lock:
            oracle, tuner_id = self.oracle, request.tuner_id
            if tuner_id not in oracle.ongoing_trials:  # (a restarted worker gets its own trial back)
                if self.stopping or results.STOP.is_set() or results.out_of_time(self.tuner.deadline):
                    oracle.tuner_ids.discard(tuner_id)
                    return self._reply("STOPPED")
                if not oracle._retry_queue and len(oracle.trials) >= self.max_trials and oracle.ongoing_trials:
                    return self._reply("IDLE")  # another worker's trial may yet come back for retry
            response = self.base.CreateTrial(request, context)
            status = trial_module.Trial.from_proto(response.trial).status
            if status == trial_module.TrialStatus.RUNNING:
                self.seen[response.trial.trial_id] = time.time()
            elif status == trial_module.TrialStatus.STOPPED:
                self.stopping = True
            return response

    def EndTrial(self, request, context):
        with self.lock:
            trial_id = request.trial.trial_id
            if trial_id in self.oracle.end_order or trial_id not in self.oracle.trials:
                # a worker thought dead finished after all, and its trial was retried: counted once
                results.log(f"chief: ignoring a second result for trial {trial_id}")
                self._forget(trial_id)
                return protos.get_service().EndTrialResponse()
            response = self.base.EndTrial(request, context)
            self.oracle.save()  # Keras Tuner saved before taking the trial off ongoing_trials
            self.seen.pop(trial_id, None)
            trial = self.oracle.trials[trial_id]
            self.tuner.record_trial(_status(trial), _metrics(trial).get(self.tuner.objective[0]))
            recent = [_status(self.oracle.trials[t]) for t in self.oracle.end_order[-MAX_CONSECUTIVE_FAILURES:]]
            if len(recent) == MAX_CONSECUTIVE_FAILURES and set(recent) == {"FAIL"}:
                self.stopping = True
                results.log(f"{self.tuner.family.NAME}: {MAX_CONSECUTIVE_FAILURES} trials failed in a row "
                            f"(last: {self.tuner.trial_rows()[-1]['error']}); stopping the search")
            return response

    def requeue_stale(self):
        """Hand the trials of workers silent for STALE_S to the next worker that asks."""
        with self.lock:
            now = time.time()
            for tuner_id, trial in list(self.oracle.ongoing_trials.items()):
                if now - self.seen.setdefault(trial.trial_id, now) > STALE_S:
                    results.log(f"chief: {tuner_id} silent for {STALE_S} s; trial {trial.trial_id} goes to "
                                "the next worker")
                    del self.oracle.ongoing_trials[tuner_id]
                    self.oracle.tuner_ids.discard(tuner_id)
                    self.oracle._retry_queue.append(trial.trial_id)
                    self.seen.pop(trial.trial_id, None)
                    self.oracle.save()

    def _forget(self, trial_id):
        for tuner_id, trial in list(self.oracle.ongoing_trials.items()):
            if trial.trial_id == trial_id:
                del self.oracle.ongoing_trials[tuner_id]
        self.seen.pop(trial_id, None)
        self.oracle.save()

    def finished(self):
        with self.lock:
            o = self.oracle
            return self.stopping and not o.ongoing_trials and not o._retry_queue and not o.tuner_ids

    def _reply(self, status):
        trial = trial_module.Trial(self.oracle.get_space(), status=status)
        return protos.get_service().CreateTrialResponse(trial=trial.to_proto())


def serve(tuner, address, start_workers=None):
    """The chief: serve the oracle on address=(ip, port) until every trial is done.

    start_workers(port) -> processes, for --workers on this machine; the chief
    then also stops when they have all exited."""
    import grpc
    from concurrent import futures
    ip, port = address
    tuner.save()  # its file's presence is what makes the next run reload the oracle
    servicer = ChiefServicer(tuner, tuner.oracle.max_trials)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(f"{ip}:{port}")
    except RuntimeError:  # gRPC's "failed to bind": a port in use, or not a port number
        port = 0
    if not port:
        raise UserError(f"the chief cannot listen on {ip}:{address[1]}: set KERASTUNER_ORACLE_IP to an address "
                        "of this host and KERASTUNER_ORACLE_PORT to a free port number")
    server.start()
    name = tuner.family.NAME
    procs = start_workers(port) if start_workers else None
    if procs is None:
        print(f"[{name} chief] serving the search on {ip}:{port}; start workers with KERASTUNER_TUNER_ID=worker0 "
              f"(worker1, ...) KERASTUNER_ORACLE_IP=<this host> KERASTUNER_ORACLE_PORT={port}", flush=True)
    try:
        while True:
            time.sleep(0.5)
            servicer.requeue_stale()
            if procs is not None:
                if all(p.poll() is not None for p in procs):
                    break
            elif servicer.finished():
                break
    finally:
        server.stop(grace=1)
    if procs is not None and not servicer.finished() and not results.STOP.is_set():
        raise UserError(f"{name}: every worker exited (exit codes {[p.returncode for p in procs]}) before the "
                        "search finished; the finished trials are saved: run the same command again to resume")
