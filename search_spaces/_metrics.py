"""Validation scores computed inside fit()'s own validation pass.

Every trial reports validation accuracy, log-loss and macro-F1 of its
restored best epoch. Computing log-loss and macro-F1 as compiled metrics puts
them in that epoch's logs, so the engine needs no extra prediction pass over
the validation set after training (which cost about one validation epoch per
trial, and on a GPU a compilation). They accept integer or one-hot targets.
Registered, so that saved models load with them.
"""

import keras
from keras import ops


def _labels(y_true, n_classes):
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) >= 2 and y_true.shape[-1] == n_classes:
        return ops.argmax(y_true, axis=-1)
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


@keras.saving.register_keras_serializable(package="search_suite")
class LogLoss(keras.metrics.Mean):
    """Mean cross-entropy of the (renormalised) predicted probabilities, whatever the training loss."""

    def __init__(self, n_classes, name="log_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_classes = n_classes

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        true = ops.one_hot(_labels(y_true, self.n_classes), self.n_classes, dtype=p.dtype)
        nll = -ops.sum(true * ops.log(ops.clip(p, 1e-15, 1.0)), axis=-1)
        return super().update_state(nll, sample_weight=sample_weight)

    def get_config(self):
        return {"n_classes": self.n_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="search_suite")
class LogLossSquared(LogLoss):
    """Mean squared cross-entropy: with LogLoss, the spread of the per-example losses, so the pruner knows the
    standard error of a validation log-loss (runners/keras_search/tuner.py, standard_error)."""

    def __init__(self, n_classes, name="log_loss_sq", **kwargs):
        super().__init__(n_classes, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        true = ops.one_hot(_labels(y_true, self.n_classes), self.n_classes, dtype=p.dtype)
        nll = -ops.sum(true * ops.log(ops.clip(p, 1e-15, 1.0)), axis=-1)
        return keras.metrics.Mean.update_state(self, nll * nll, sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="search_suite")
class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 over all classes (0 for a class never true nor predicted), from confusion counts."""

    def __init__(self, n_classes, name="macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_classes = n_classes
        self.counts = self.add_variable(shape=(n_classes, n_classes), initializer="zeros", name="counts")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.one_hot(_labels(y_true, self.n_classes), self.n_classes, dtype=self.counts.dtype)
        pred = ops.one_hot(ops.argmax(y_pred, axis=-1), self.n_classes, dtype=self.counts.dtype)
        self.counts.assign_add(ops.matmul(ops.transpose(true), pred))

    def result(self):
        tp = ops.diagonal(self.counts)
        actual, predicted = ops.sum(self.counts, axis=1), ops.sum(self.counts, axis=0)
        f1 = ops.divide_no_nan(2 * tp, actual + predicted)  # = 2PR/(P+R)
        return ops.mean(f1)

    def reset_state(self):
        self.counts.assign(ops.zeros(self.counts.shape, dtype=self.counts.dtype))  # zeros_like fails on JAX

    def get_config(self):
        return {"n_classes": self.n_classes, "name": self.name}


def classification_metrics(n_classes):
    """The metrics every classifier family compiles with."""
    return ["accuracy", LogLoss(n_classes), LogLossSquared(n_classes), MacroF1(n_classes)]
