"""The block-1 CNN, compared across activations, losses and skip connections.

Defaults = the earlier study: Conv2D 64 -> 128 -> 256 (3x3, ReLU), each
followed by BatchNorm and MaxPool 2x2 -> Flatten -> Dense 512 -> Dropout 0.5
-> Dense 256 -> Dropout 0.5 -> Dense softmax; Adam 1e-3, sparse categorical
cross-entropy, batch 32, up to 40 epochs, early stopping (patience 5, restore
best; in the engine) and reduce-on-plateau (factor 0.2, patience 3).

Skip connections: "concat" joins each conv block's pooled features to the
dense head (the earlier study's concatenation of earlier feature maps);
"residual" adds a 1x1-projected shortcut around each conv.
"""

import keras
import keras_tuner as kt
import pandas as pd
from keras import layers

from search_spaces._layers import RandomTranslation
from search_spaces._metrics import classification_metrics

NAME = "cifar_cnn"
TASK = "cifar"
BLOCK = 1
ENGINE = "keras_tuner"
DESCRIPTION = "block-1 CNN 64-128-256: activation x loss x skip connections (earlier study's CNN)"
EPOCHS = 40
FILTERS = (64, 128, 256)
ACTIVATIONS = ["relu", "elu", "selu", "gelu", "swish", "leaky_relu", "tanh"]
LOSSES = ["sparse_categorical_crossentropy", "label_smoothing", "focal", "squared_hinge", "kl_divergence"]


def activation_layer(name):
    return layers.LeakyReLU(0.1) if name == "leaky_relu" else layers.Activation(name)


def make_loss(name):
    """The loss, and whether it wants one-hot targets."""
    if name == "sparse_categorical_crossentropy":
        return keras.losses.SparseCategoricalCrossentropy(), False
    if name == "label_smoothing":
        return keras.losses.CategoricalCrossentropy(label_smoothing=0.1), True
    if name == "focal":
        return keras.losses.CategoricalFocalCrossentropy(), True
    if name == "squared_hinge":
        return keras.losses.SquaredHinge(), True
    return keras.losses.KLDivergence(), True


class HyperModel(kt.HyperModel):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def build(self, hp):
        activation = hp.Choice("activation", ACTIVATIONS, default="relu")
        skip = hp.Choice("skip", ["none", "concat", "residual"], default="none")
        dropout = hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.5)
        inputs = keras.Input(shape=(32, 32, 3), name="image")
        x = inputs
        if hp.Boolean("augment", default=False):  # active in training only
            x = layers.RandomFlip("horizontal")(x)
            x = RandomTranslation(0.1, 0.1)(x)  # compiled on JAX (_layers.py)
        pooled = []
        for i, filters in enumerate(FILTERS, start=1):
            y = layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv")(x)
            y = activation_layer(activation)(y)
            if skip == "residual":
                y = layers.Add()([y, layers.Conv2D(filters, 1, name=f"block{i}_shortcut")(x)])
            y = layers.BatchNormalization(name=f"block{i}_bn")(y)
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(y)
            pooled.append(x)
        features = layers.Flatten(name="features")(x)
        if skip == "concat":
            features = layers.Concatenate()([features] + [layers.GlobalAveragePooling2D()(p) for p in pooled[:-1]])
        x = features
        for units in (512, 256):
            x = activation_layer(activation)(layers.Dense(units)(x))
            x = layers.Dropout(dropout)(x)
        outputs = layers.Dense(self.spec["n_classes"], activation="softmax", name="class")(x)
        model = keras.Model(inputs, outputs, name=NAME)
        loss, _ = make_loss(hp.Choice("loss", LOSSES, default="sparse_categorical_crossentropy"))
        lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss,
                      metrics=classification_metrics(self.spec["n_classes"]))
        return model

    def fit(self, hp, model, x, y, validation_data=None, callbacks=(), **kwargs):
        _, one_hot = make_loss(hp.get("loss"))
        n = self.spec["n_classes"]
        if one_hot:
            y = keras.utils.to_categorical(y, n)
            if validation_data is not None:
                validation_data = (validation_data[0], keras.utils.to_categorical(validation_data[1], n))
        callbacks = list(callbacks) + [keras.callbacks.ReduceLROnPlateau(factor=0.2, patience=3)]
        return model.fit(x, y, batch_size=hp.Choice("batch_size", [32, 64, 128, 256], default=32),
                         validation_data=validation_data, callbacks=callbacks, **kwargs)


def comparison_tables(trials):
    """The earlier study's questions: best validation accuracy per activation, per loss, per skip setting."""
    done = trials[trials["status"] == "COMPLETE"]
    tables = {}
    for hp in ("activation", "loss", "skip"):
        col = f"hp_{hp}"
        if col not in done or done.empty:
            continue
        best = done.loc[done.groupby(col)["val_accuracy"].idxmax()]
        tables[f"compare_{hp}"] = pd.DataFrame({
            hp: best[col].to_numpy(), "best_val_accuracy": best["val_accuracy"].to_numpy(),
            "trials": done.groupby(col).size().reindex(best[col]).to_numpy(),
            "best_trial": best["trial_id"].to_numpy()}).sort_values("best_val_accuracy", ascending=False)
    return tables
