"""Transfer to block 2: the best block-1 CNN and/or autoencoder encoder, with a new head.

Needs results of `cifar_cnn` and/or `cifar_autoencoder` (same --data and
--seed, so block 2 holds the classes block 1 did not). The earlier study
froze nothing and fed the autoencoder's whole reconstruction to its head;
here the source's features feed the head, and the search decides how many
source blocks stay frozen and whether to fine-tune afterwards.

Defaults: source = the CNN, nothing frozen (as the earlier study), head
Dense 256 -> Dropout 0.5 -> softmax, Adam 1e-3, batch 32, no fine-tuning.
`source = none` trains the same architecture from scratch: the baseline the
transfer comparison needs, on the same block-2 split.
"""

import keras
import keras_tuner as kt
import pandas as pd
from keras import layers

from search_spaces._layers import RandomTranslation

NAME = "cifar_transfer"
TASK = "cifar"
BLOCK = 2
ENGINE = "keras_tuner"
DESCRIPTION = "block 2 from the best block-1 CNN and/or encoder (frozen blocks, head, fine-tuning) or scratch"
EPOCHS = 40
SOURCE_FAMILIES = {"cnn": "cifar_cnn", "encoder": "cifar_autoencoder"}
# Trial 0 is the baseline (the defaults); trial 1 the same from scratch, so
# the transfer comparison always has its reference.
FIRST_TRIALS = ({}, {"source": "none"})


def _freeze(model, blocks):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _freeze(layer, blocks)
        elif any(layer.name.startswith(f"block{i}_") for i in range(1, blocks + 1)):
            layer.trainable = False


def _unfreeze(model):
    for layer in model.layers:
        layer.trainable = True


class HyperModel(kt.HyperModel):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec  # n_classes, sources: {"cnn": path, "encoder": path} of what exists

    def build(self, hp):
        available = [s for s in ("cnn", "encoder") if s in self.spec["sources"]]
        choices = available + (["both"] if len(available) == 2 else []) + ["none"]
        source = hp.Choice("source", choices, default=choices[0])
        frozen = hp.Int("frozen_blocks", 0, 3, default=0)
        inputs = keras.Input(shape=(32, 32, 3), name="image")
        features = []
        if source in ("cnn", "both", "none"):
            cnn = self._load("cnn") if source != "none" else self._fresh_cnn()
            extractor = keras.Model(cnn.inputs, cnn.get_layer("features").output, name="cnn_features")
            _freeze(extractor, frozen if source != "none" else 0)
            features.append(extractor(inputs))
        if source in ("encoder", "both"):
            encoder = self._load("encoder").get_layer("encoder")
            _freeze(encoder, frozen)
            features.append(layers.Flatten()(encoder(inputs)))
        x = features[0] if len(features) == 1 else layers.Concatenate()(features)
        x = layers.Dense(hp.Choice("head_units", [128, 256, 512], default=256), activation="relu")(x)
        x = layers.Dropout(hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.5))(x)
        outputs = layers.Dense(self.spec["n_classes"], activation="softmax", name="class")(x)
        model = keras.Model(inputs, outputs, name=NAME)
        lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def _load(self, source):
        # a fresh copy for every trial: no trial trains another's weights
        return keras.saving.load_model(self.spec["sources"][source], safe_mode=True, compile=False,
                                       custom_objects={"search_suite>RandomTranslation": RandomTranslation})

    def _fresh_cnn(self):
        """The block-1 CNN's architecture with new weights (source = none)."""
        cnn = self._load("cnn") if "cnn" in self.spec["sources"] else None
        if cnn is None:  # only an autoencoder exists: the earlier study's CNN at its defaults
            from search_spaces import cifar_cnn
            cnn = cifar_cnn.HyperModel({"n_classes": self.spec["n_classes"]}).build(kt.HyperParameters())
        return keras.Model.from_config(cnn.get_config())

    def fit(self, hp, model, x, y, validation_data=None, epochs=1, callbacks=(), **kwargs):
        batch_size = hp.Choice("batch_size", [32, 64, 128], default=32)
        callbacks = list(callbacks) + [keras.callbacks.ReduceLROnPlateau(factor=0.2, patience=3)]
        history = model.fit(x, y, batch_size=batch_size, validation_data=validation_data, epochs=epochs,
                            callbacks=callbacks, **kwargs)
        if hp.Boolean("fine_tune", default=False):
            # Second phase: everything trainable, learning rate divided by 10.
            with hp.conditional_scope("fine_tune", [True]):
                ft_epochs = hp.Int("fine_tune_epochs", 1, 10, default=max(1, epochs // 2))
            _unfreeze(model)
            lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) / 10
            model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            done = len(history.history.get("loss", []))
            history = model.fit(x, y, batch_size=batch_size, validation_data=validation_data,
                                epochs=done + ft_epochs, initial_epoch=done, callbacks=callbacks, **kwargs)
        return history


def comparison_tables(trials):
    """Best transferred model vs best from scratch, on the same block-2 split."""
    done = trials[trials["status"] == "COMPLETE"]
    rows = []
    for label, part in (("transferred", done[done["hp_source"] != "none"]),
                        ("from scratch", done[done["hp_source"] == "none"])):
        if part.empty:
            rows.append({"model": label, "trials": 0})
            continue
        best = part.loc[part["val_accuracy"].idxmax()]
        rows.append({"model": label, "trials": len(part), "source": best["hp_source"],
                     "best_val_accuracy": best["val_accuracy"], "epochs_to_best": best["best_epoch"],
                     "epochs_run": best["epochs_run"], "best_trial": best["trial_id"]})
    return {"compare_transfer": pd.DataFrame(rows)}
