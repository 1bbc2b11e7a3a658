"""One trial: build a configuration, train it with the suite's callbacks, score it on validation."""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import keras
import keras_tuner as kt

from lyrics_cifar_search.runners import compat, trials_table
from lyrics_cifar_search.runners.keras_search import accelerate
from lyrics_cifar_search.study_data.text import as_model_takes
from lyrics_cifar_search.suite_common import atomic

if TYPE_CHECKING:
    from lyrics_cifar_search.runners.prepare import Prepared
    from lyrics_cifar_search.search_spaces import KerasFamily

logger = logging.getLogger(__name__)


class EpochLog(keras.callbacks.Callback):
    """Writes the trial's per-epoch curves (Keras Tuner keeps only the best epoch), and shows them:

    show="lines": one line per epoch (--verbose); "live": the trial's line on a terminal ("[family] trial 3:
    epoch 2/20 ...", label its start), rewritten as batches and epochs end and cleared when the trial ends (its
    finished trial line takes its place); None: nothing (a pipe, a log)."""

    def __init__(self, path, epochs, show=None, label=""):
        super().__init__()
        self.path, self.epochs, self.rows, self.show = Path(path), epochs, [], show
        self.label = f"{label}: " if label else ""
        self.phase_start = 0  # a family that fits twice (fine-tuning): the last fit's weights are kept
        self._epoch, self._shown_at, self._started = 0, 0.0, time.time()

    def on_train_begin(self, logs=None):
        self.phase_start = len(self.rows)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        # Only on a terminal (show="live"): Keras waits for each step's logs when a callback reads them,
        # a cost taken only when someone watches. At most two updates a second.
        if self.show == "live" and time.time() - self._shown_at > 0.5:
            self._live(f"epoch {self._epoch}/{self.epochs}  batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.rows.append({"epoch": epoch + 1, **logs})
        header = list(self.rows[0])
        lines = [",".join(header)] + [",".join(repr(r.get(k, "")) for k in header) for r in self.rows]
        atomic.write_text(self.path, "\n".join(lines) + "\n")
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy"))
        if self.show == "lines":
            logger.debug(f"    epoch {epoch + 1}/{self.epochs}  {shown}")
        elif self.show == "live":
            self._live(f"epoch {epoch + 1}/{self.epochs}  {shown}")
        if not math.isfinite(logs.get("loss", 0.0)):
            self.model.stop_training = True  # the trial has failed; see nan_epoch

    def on_train_end(self, logs=None):
        if self.show == "live":
            sys.stdout.write("\r\033[K")  # the trial's own line comes next
            sys.stdout.flush()

    def _live(self, text):
        self._shown_at = time.time()
        elapsed = int(self._shown_at - self._started)
        line = f"{self.label}{text}  ({elapsed // 60}:{elapsed % 60:02d} in this trial)"
        # one terminal row: a line that wraps cannot be rewritten in place
        sys.stdout.write("\r\033[K" + line[:shutil.get_terminal_size().columns - 1])
        sys.stdout.flush()

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


class EvaluateEachEpoch(keras.callbacks.Callback):
    """A family scored by its own evaluate() (the autoencoder's reconstruction error): that score at every epoch
    end, put into the epoch's logs, so the history, the study's learning curve and the pruner have the value the
    trial is scored on (Keras's logs hold only its training loss). One pass over the validation set an epoch."""

    def __init__(self, family, p, batch_size):
        super().__init__()
        self.family, self.p, self.batch_size = family, p, batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        outputs = self.model.predict(self.p.x_val, batch_size=self.batch_size, verbose=0)
        try:
            logs.update(self.family.evaluate(outputs, self.p.x_val, self.p.y_val))
        except FloatingPointError:
            logs["loss"] = math.nan  # the trial fails at its end (EpochLog.nan_epoch)


def _free_last_trial():
    """Free what the last trial left behind: Keras's state, and what clear_session misses.

    TensorFlow: the traced steps' gradient functions, which keep every past
    model alive (runners/compat.py). All backends: glibc keeps freed heap
    memory (the entry points ask it to keep blocks for reuse:
    suite_common/process.py); malloc_trim returns it. JAX's compilation caches
    are left alone (clearing them cost more than it saved: bench/README.md).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        compat.forget_traced_gradients()
    if backend == "torch" and compat.nothing_compiled_by_dynamo():
        # Keras compiles with dynamo only when asked (jit_compile=True); with nothing
        # compiled there is nothing to reset.
        with compat.dynamo_reset_skipped():
            keras.backend.clear_session()
    else:
        keras.backend.clear_session()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to return
        pass


def train(family: KerasFamily, hypermodel: kt.HyperModel, hp: kt.HyperParameters, p: Prepared, *, epochs: int,
          seed: int, history_path: Path, callbacks: Sequence[keras.callbacks.Callback] = (), verbose: bool = False,
          label: str = "") -> tuple[keras.Model, dict[str, Any]]:
    """Build and train one configuration; return the model and its validation metrics.

    Used by every trial, and again by the analysis to retrain a best
    configuration with other seeds. verbose: a line per epoch; otherwise one
    updating line on a terminal, label ("[family] trial 3") first, and nothing in pipes and logs.
    """
    _free_last_trial()  # no graph or memory carried over between trials
    keras.utils.set_random_seed(seed)
    start = time.time()
    model = hypermodel.build(hp)
    if keras.backend.backend() == "tensorflow":
        compat.quick_fit(model)  # one trace of the train step, not two; two tf.data iterators an epoch, not four
    # the data in the structure the model's inputs were built on (a user's family: often one input, not a dict)
    p = dataclasses.replace(p, x_train=as_model_takes(model, p.x_train), x_val=as_model_takes(model, p.x_val))
    n_train, batch_size = len(keras.tree.flatten(p.x_train)[0]), hp.values.get("batch_size")
    if batch_size and accelerate.use_fused_steps(epochs * -(-n_train // batch_size)):
        accelerate.fuse_train_steps(model, n_train, batch_size)
    elif accelerate.use_graph_steps():
        accelerate.graph_train_steps(model)
    live = sys.stdout.isatty() and logger.isEnabledFor(logging.INFO)  # a terminal, and progress shown (not --quiet)
    log = EpochLog(history_path, epochs, show="lines" if verbose else "live" if live else None, label=label)
    # No callback here looks at single batches (Keras's TerminateOnNaN does): a
    # per-batch hook makes Keras wait for every step's logs, which stalls a GPU.
    # A NaN loss stops training at the end of its epoch instead (EpochLog).
    patience = family.patience  # None: no early stopping (the autoencoder, as the study)
    stopping = [] if patience is None else [keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True)]
    # first: the callbacks after it read the scores it adds to the epoch's logs
    evaluating = [EvaluateEachEpoch(family, p, batch_size or 256)] if family.evaluate is not None else []
    callbacks = [*evaluating, log, *stopping, *callbacks]
    # Keras's own progress bar stays off: EpochLog shows progress (one line, never two per epoch).
    hypermodel.fit(hp, model, p.x_train, p.y_train, validation_data=(p.x_val, p.y_val),
                   epochs=epochs, callbacks=callbacks, verbose=0)
    if log.nan_epoch is not None:
        raise kt.errors.FailedTrialError(f"loss became NaN at epoch {log.nan_epoch}")
    best_epoch = log.best_epoch(restored=bool(stopping))
    best = log.rows[best_epoch - 1] if best_epoch else {}
    if family.evaluate is None and {"val_accuracy", "val_log_loss", "val_macro_f1"} <= set(best):
        # EarlyStopping restored the weights of this epoch: its own validation scores
        # (search_spaces/_metrics.py) are the model's, with no second pass.
        metrics = {"val_accuracy": best["val_accuracy"], "val_loss": best["val_log_loss"],
                   "val_macro_f1": best["val_macro_f1"]}
    else:
        # Batches of the training batch size: the shapes fit() already compiled and,
        # on a GPU, autotuned for validation (a new batch shape costs seconds there).
        outputs = model.predict(p.x_val, batch_size=batch_size or 256, verbose=0)
        if family.evaluate is not None:  # e.g. reconstruction error for an autoencoder
            metrics = family.evaluate(outputs, p.x_val, p.y_val)
        else:
            metrics = trials_table.classification_metrics(p.y_val, outputs, len(p.label_names))
    metrics.update(epochs_run=len(log.rows), best_epoch=best_epoch, duration_s=round(time.time() - start, 3))
    return model, metrics


class BudgetReached(Exception):
    """--time-budget has passed: the search stops before its next trial."""


class TooManyFailures(Exception):
    """trials_table.MAX_CONSECUTIVE_FAILURES trials failed in a row: the search stops (the message: the last error)."""


class StopAtDeadline(keras.callbacks.Callback):
    """--time-budget-hard: the trial in progress stops at the first epoch end after the deadline."""

    def __init__(self, stop):
        super().__init__()
        self.stop, self.stopped = stop, False  # a search_progress.Stop

    def on_epoch_end(self, epoch, logs=None):
        if self.stop.out_of_time():
            self.stopped = self.model.stop_training = True
