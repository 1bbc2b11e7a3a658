"""Transfer to block 2: a trained block-1 CNN and/or the best autoencoder, with a new head.

Needs results of `cifar_cnn` and/or `cifar_autoencoder` (same --data and
--seed, so block 2 holds the classes block 1 did not).

Defaults = the earlier study's transfer model: the image goes through the
convolutions of the study's block-1 skip model (cifar_cnn's trial 1, kept as
results/cifar_cnn/study_skip_model/; the best CNN when that trial has not
run), trained, alone, in order (each Conv2D with its
activation; no BatchNorm, no pooling: 26x26x256 values with valid padding),
flattened, and through the study's whole trained autoencoder (cifar_autoencoder's
trial 0, kept as its baseline/; the best autoencoder when that trial has not run:
its 32x32x3 reconstruction), flattened; the two are concatenated -> Dense 256 ReLU ->
Dropout 0.5 -> softmax. Nothing frozen, Adam 1e-3, batch 32, up to 50
epochs, early stopping (5, restore best) and reduce-on-plateau (0.2, 3,
min_lr 1e-6). When only one block-1 model exists, its part alone.

Searched: whose CNN weights (the study's skip model, or the best block-1
CNN) and whose autoencoder (the study's, or the best), the source (both, cnn, encoder, or none = the default source's
architecture, every block-1 model there is, with random weights: the
reference the transfer comparison needs, on the same block-2 split), what each source gives (the CNN's convolutions alone, or its
whole conv stack with BatchNorm and pooling; the autoencoder's
reconstruction, or its 8x8 code), frozen source blocks, head width, dropout,
learning rate, batch size, and a fine-tuning phase (all unfrozen, lr / 10).
"""

from typing import Any, Sequence

import keras
import keras_tuner as kt
import pandas as pd
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._layers import RandomTranslation
from lyrics_cifar_search.suite_common.tables import at_equal_effort

NAME = "cifar_transfer"
SOURCE_FAMILIES = {"cnn": "cifar_cnn", "encoder": "cifar_autoencoder"}

def _freeze(model, blocks):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _freeze(layer, blocks)
        elif any(layer.name.startswith(f"block{i}_") for i in range(1, blocks + 1)):
            layer.trainable = False


def _unfreeze(model):
    for layer in model.layers:
        layer.trainable = True


def _conv_layers(cnn, inputs, frozen):
    """The CNN's convolutions (with their activations) alone, in order, on the image: the earlier
    study's transfer features (it took every Conv2D of the trained model and chained them)."""
    x = inputs
    for i in range(1, 4):
        conv = cnn.get_layer(f"block{i}_conv")
        conv.trainable = i > frozen
        x = conv(x)
        try:
            x = cnn.get_layer(f"block{i}_act")(x)
        except ValueError:  # a model saved before the activations were named: its conv carries none
            pass
    return layers.Flatten(name="cnn_conv_features")(x)


def comparison_tables(trials: pd.DataFrame, objective: str = "val_accuracy",
                      direction: str = "max") -> dict[str, pd.DataFrame]:
    """Best transferred model vs best from scratch, on the same block-2 split, over all their trials and at equal
    effort (each side's first k trials: with the two fixed first trials, trial 0 transferred against trial 1
    from scratch), with how many trials and epochs each stands on."""
    if "hp_source" not in trials:
        return {"compare_transfer": pd.DataFrame([{"model": m, "trials": 0} for m in ("transferred", "from scratch")])}
    label = trials["hp_source"].map(lambda s: "from scratch" if s == "none" else "transferred")
    rows, _ = at_equal_effort(trials, label, objective, direction)
    by_model = {r["group"]: r for r in rows}
    out: list[dict[str, Any]] = []
    for model in ("transferred", "from scratch"):
        r = by_model.get(model)
        if r is None:
            out.append({"model": model, "trials": 0})
            continue
        best = trials[trials["trial_id"] == r["best_trial"]] if r["best_trial"] is not None else trials.iloc[:0]
        out.append({"model": model, **{k: v for k, v in r.items() if k != "group"},
                    "source": best["hp_source"].iloc[0] if len(best) else None,
                    "epochs_to_best": best["best_epoch"].iloc[0] if len(best) else None,
                    "epochs_run": best["epochs_run"].iloc[0] if len(best) else None})
    return {"compare_transfer": pd.DataFrame(out)}


@register_family(NAME, task="cifar",
                 description="block 2 from the best block-1 CNN and/or autoencoder "
                             "(earlier study: conv layers + reconstruction)",
                 epochs=50,
                 block=2,
                 # trial 0 is the baseline; trial 1 the same from scratch, the transfer's reference
                 first_trials=({}, {"source": "none"}),
                 # kept as <search>/from_scratch/: the report compares it with trial 0 on the test set
                 kept_trials={"from_scratch": {"source": "none"}},
                 source_families=SOURCE_FAMILIES,
                 comparison_tables=comparison_tables)
class HyperModel(kt.HyperModel):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec  # n_classes, sources: {"cnn": path, "encoder": path} of what exists

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        available = [s for s in ("cnn", "encoder") if s in self.spec["sources"]]
        choices = (["both"] if len(available) == 2 else []) + available + ["none"]
        source = hp.Choice("source", choices, default=choices[0])
        # "none" is the reference: the default source's architecture (every block-1 model there is) with
        # random weights, so transfer vs scratch compares weights, not architectures
        uses = {"both": {"cnn", "encoder"}, "cnn": {"cnn"}, "encoder": {"encoder"}, "none": set(available)}
        cnn_part = cnn_key = ae_part = ae_key = None
        if "cnn" in available:  # (a scope over no source at all is not one Keras Tuner can hold)
            with hp.conditional_scope("source", [c for c in choices if "cnn" in uses[c]]):
                cnn_part = hp.Choice("cnn_features", ["conv_layers", "conv_stack"], default="conv_layers")
                # whose weights: the study's skip model (cifar_cnn's trial 1), as the study took, or the best CNN
                weights = (["study_skip_model"] if "cnn_skip_model" in self.spec["sources"] else []) + ["best"]
                cnn_key = "cnn_skip_model" if hp.Choice("cnn_weights", weights, default=weights[0]) != "best" \
                    else "cnn"
        if "encoder" in available:
            with hp.conditional_scope("source", [c for c in choices if "encoder" in uses[c]]):
                ae_part = hp.Choice("autoencoder_features", ["reconstruction", "code"], default="reconstruction")
                # whose weights: the study's autoencoder (cifar_autoencoder's trial 0, its baseline/), or the best
                ae_weights = (["study_autoencoder"] if "encoder_study" in self.spec["sources"] else []) + ["best"]
                ae_key = "encoder_study" if hp.Choice("autoencoder_weights", ae_weights,
                                                      default=ae_weights[0]) != "best" else "encoder"
        frozen = hp.Int("frozen_blocks", 0, 3, default=0)
        blocks = frozen if source != "none" else 0  # random weights: nothing to keep frozen
        inputs = keras.Input(shape=(32, 32, 3), name="image")
        features = []
        if "cnn" in uses[source]:
            cnn = self._load(cnn_key) if source != "none" else self._fresh(cnn_key)
            if cnn_part == "conv_layers":
                features.append(_conv_layers(cnn, inputs, blocks))
            else:
                extractor = keras.Model(cnn.inputs, cnn.get_layer("features").output, name="cnn_features")
                _freeze(extractor, blocks)
                features.append(extractor(inputs))
        if "encoder" in uses[source]:
            autoencoder = self._load(ae_key) if source != "none" else self._fresh(ae_key)
            part = autoencoder if ae_part == "reconstruction" else autoencoder.get_layer("encoder")
            _freeze(part, blocks)
            features.append(layers.Flatten(name=f"autoencoder_{ae_part}")(part(inputs)))
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

    def _fresh(self, source):
        """A block-1 model's architecture with new, random weights (source = none)."""
        model = self._load(source)
        return keras.Model.from_config(model.get_config(),
                                       custom_objects={"search_suite>RandomTranslation": RandomTranslation})

    def fit(self, hp: kt.HyperParameters, model: keras.Model, x: Any, y: Any, validation_data: Any = None,
            epochs: int = 1, callbacks: Sequence[keras.callbacks.Callback] = (), **kwargs: Any) -> Any:
        batch_size = hp.Choice("batch_size", [32, 64, 128], default=32)
        callbacks = list(callbacks) + [keras.callbacks.ReduceLROnPlateau(factor=0.2, patience=3, min_lr=1e-6)]
        history = model.fit(x, y, batch_size=batch_size, validation_data=validation_data, epochs=epochs,
                            callbacks=callbacks, **kwargs)
        if hp.Boolean("fine_tune", default=False):
            # Second phase: everything trainable, learning rate divided by 10. Its
            # early stopping restores the best epoch of this phase: the weights kept.
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
