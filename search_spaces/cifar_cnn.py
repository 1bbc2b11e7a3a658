"""The block-1 CNN, compared across activations, losses and skip connections.

Defaults = the earlier study: Conv2D 64 -> 128 -> 256 (3x3, "valid"
padding, ReLU), each followed by BatchNorm and MaxPool 2x2 -> Flatten (2x2x256
= 1,024 values) -> Dense 512 -> Dropout 0.5 -> Dense 256 -> Dropout 0.5 ->
Dense softmax; Adam 1e-3, sparse categorical cross-entropy, batch 32, up to
40 epochs, early stopping (patience 5, restore best; in the engine) and
reduce-on-plateau (factor 0.2, patience 3, min_lr 1e-6).

The study's other block-1 models are points of this space: tanh everywhere
(activation=tanh), a sigmoid output layer (output_activation=sigmoid), and
its skip-connection model (skip=concat: the Dense 512's output joined with
the flattened second conv block and the flattened conv features, then
Dense 256 -> Dropout -> softmax). skip=residual adds a 1x1-projected
shortcut around each conv instead. The skip model is trial 1 of every search,
and its model is kept as <search>/study_skip_model/: the earlier study's
transfer took that model's convolutions (cifar_transfer). Trials 2 and 3 are the
study's tanh and sigmoid-output models, so that each row of the comparison tables
has the study's own model beside the best found.
"""

from typing import Any, Optional, Sequence

import keras
import keras_tuner as kt
import pandas as pd
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._layers import RandomTranslation
from lyrics_cifar_search.search_spaces._metrics import classification_metrics
from lyrics_cifar_search.suite_common.tables import at_equal_effort

NAME = "cifar_cnn"
FILTERS = (64, 128, 256)
ACTIVATIONS = ["relu", "elu", "selu", "gelu", "swish", "leaky_relu", "tanh"]
LOSSES = ["sparse_categorical_crossentropy", "label_smoothing", "focal", "squared_hinge", "kl_divergence"]


def activation_layer(name: str, layer_name: Optional[str] = None) -> keras.layers.Layer:
    return layers.LeakyReLU(0.1, name=layer_name) if name == "leaky_relu" else layers.Activation(name, name=layer_name)


def make_loss(name: str) -> Any:
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


def comparison_tables(trials: pd.DataFrame, objective: str = "val_accuracy",
                      direction: str = "max") -> dict[str, pd.DataFrame]:
    """The earlier study's questions: per activation, output activation, loss and skip setting, the study's own
    model (the fixed one-factor trial: the baseline, or tanh, sigmoid output, the skip model), the best found over
    all its trials, and the best at equal effort (each setting's first trials up to the epochs the least-trained
    setting spent), with how many trials (pruned ones too) and epochs each stands on."""
    tables = {}
    for hp in ("activation", "output_activation", "loss", "skip"):
        col = f"hp_{hp}"
        if col not in trials:
            continue
        rows, _ = at_equal_effort(trials, trials[col], objective, direction, hp=hp)
        if not len(rows):
            continue
        table = pd.DataFrame(rows).rename(columns={"group": hp})
        tables[f"compare_{hp}"] = table.sort_values(f"best_{objective}_at_equal_effort",
                                                    ascending=direction == "min", na_position="last")
    return tables


@register_family(NAME, task="cifar",
                 description="block-1 CNN 64-128-256: activation x loss x skip connections (earlier study's CNN)",
                 epochs=40,
                 block=1,
                 # the study's four block-1 CNNs, each differing from the baseline in one factor: trial 1 is its
                 # skip model (cifar_transfer's study configuration takes its convolutions), 2 tanh everywhere,
                 # 3 a sigmoid output; the comparison tables set each beside the best found
                 first_trials=({}, {"skip": "concat"}, {"activation": "tanh"}, {"output_activation": "sigmoid"}),
                 kept_trials={"study_skip_model": {"skip": "concat"}},
                 comparison_tables=comparison_tables)
class HyperModel(kt.HyperModel):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        activation = hp.Choice("activation", ACTIVATIONS, default="relu")
        skip = hp.Choice("skip", ["none", "concat", "residual"], default="none")
        padding = hp.Choice("conv_padding", ["valid", "same"], default="valid")
        dropout = hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.5)
        inputs = keras.Input(shape=(32, 32, 3), name="image")
        x = inputs
        if hp.Boolean("augment", default=False):  # active in training only
            x = layers.RandomFlip("horizontal")(x)
            x = RandomTranslation(0.1, 0.1)(x)  # compiled on JAX (_layers.py)
        pooled = []
        for i, filters in enumerate(FILTERS, start=1):
            y = layers.Conv2D(filters, 3, padding=padding, name=f"block{i}_conv")(x)
            y = activation_layer(activation, f"block{i}_act")(y)  # named: cifar_transfer reuses conv + activation
            if skip == "residual":
                shortcut = layers.Cropping2D(1)(x) if padding == "valid" else x  # the conv's output size
                y = layers.Add()([y, layers.Conv2D(filters, 1, name=f"block{i}_shortcut")(shortcut)])
            y = layers.BatchNormalization(name=f"block{i}_bn")(y)
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(y)
            pooled.append(x)
        features = layers.Flatten(name="features")(x)
        x = activation_layer(activation)(layers.Dense(512)(features))
        if skip == "concat":  # the earlier study's skip model: no dropout here, the skips joined instead
            x = layers.Concatenate()([x, layers.Flatten()(pooled[1]), features])
        else:
            x = layers.Dropout(dropout)(x)
        x = layers.Dropout(dropout)(activation_layer(activation)(layers.Dense(256)(x)))
        output_activation = hp.Choice("output_activation", ["softmax", "sigmoid"], default="softmax")
        outputs = layers.Dense(self.spec["n_classes"], activation=output_activation, name="class")(x)
        model = keras.Model(inputs, outputs, name=NAME)
        loss, _ = make_loss(hp.Choice("loss", LOSSES, default="sparse_categorical_crossentropy"))
        lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss,
                      metrics=classification_metrics(self.spec["n_classes"]))
        return model

    def fit(self, hp: kt.HyperParameters, model: keras.Model, x: Any, y: Any, validation_data: Any = None,
            callbacks: Sequence[keras.callbacks.Callback] = (), **kwargs: Any) -> Any:
        _, one_hot = make_loss(hp.get("loss"))
        n = self.spec["n_classes"]
        if one_hot:
            y = keras.utils.to_categorical(y, n)
            if validation_data is not None:
                validation_data = (validation_data[0], keras.utils.to_categorical(validation_data[1], n))
        callbacks = list(callbacks) + [keras.callbacks.ReduceLROnPlateau(factor=0.2, patience=3, min_lr=1e-6)]
        return model.fit(x, y, batch_size=hp.Choice("batch_size", [32, 64, 128, 256], default=32),
                         validation_data=validation_data, callbacks=callbacks, **kwargs)
