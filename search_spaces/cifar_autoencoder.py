"""Convolutional autoencoder on block 1 (its encoder is a transfer source).

Defaults = the earlier study: encoder Conv 64 -> BatchNorm -> MaxPool ->
Conv 32 -> BatchNorm -> MaxPool (an 8x8x32 code); decoder Conv 32 ->
BatchNorm -> UpSampling -> Conv 64 -> BatchNorm -> UpSampling ->
Conv2D(3, sigmoid) (50,499 parameters); MSE, Adam 1e-3, batch 128, 15 epochs,
no early stopping. On pixels in [0, 1] (the earlier study fed raw 0-255
pixels to a sigmoid output).
The search minimises the validation reconstruction MSE, whatever the training
loss (MSE or MAE), so trials stay comparable.
"""

from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
from keras import layers

from lyrics_cifar_search.search_spaces import register_family


NAME = "cifar_autoencoder"


def evaluate(recon: np.ndarray, x_val: np.ndarray, y_val: Any) -> dict[str, float]:
    """Validation metrics from the model's reconstructions of x_val."""
    if not np.all(np.isfinite(recon)):
        raise FloatingPointError("the autoencoder reconstructs NaN")
    per_image = np.mean((recon - x_val) ** 2, axis=tuple(range(1, recon.ndim)))
    return {"val_reconstruction_mse": float(np.mean(per_image)),
            "val_reconstruction_mae": float(np.mean(np.abs(recon - x_val))),
            "val_loss": float(np.mean(per_image)),
            # its standard error over the validation images: the pruner's noise margin (runners/policy.py)
            "val_reconstruction_mse_se": float(np.std(per_image) / np.sqrt(max(len(per_image), 1)))}


def save_extras(model: keras.Model, prepared: Any, folder: Path, n: int = 8) -> None:
    """Sample validation images (top row) and their reconstructions (bottom) as a PNG."""
    import matplotlib  # matplotlib: only when a figure is drawn
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: only when a figure is drawn
    x = prepared.x_val[:n]
    recon = model.predict(x, verbose=0)
    fig, axes = plt.subplots(2, len(x), figsize=(1.5 * len(x), 3.2))
    for i in range(len(x)):
        for row, img in enumerate((x[i], recon[i])):
            axes[row, i].imshow(np.clip(img, 0, 1))
            axes[row, i].axis("off")
    axes[0, 0].set_title("original", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(folder / "reconstructions.png", dpi=100)
    plt.close(fig)


@register_family(NAME, task="cifar",
                 description="block-1 convolutional autoencoder (earlier study: 64-32 encoder, 8x8x32 code)",
                 epochs=15,
                 block=1,
                 patience=None,  # the earlier study trained all 15 epochs: the last epoch's weights
                 objective=("val_reconstruction_mse", "min"),
                 targets="images",  # the engine trains it to reproduce its input
                 evaluate=evaluate,
                 save_extras=save_extras)
class HyperModel(kt.HyperModel):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        depth = hp.Int("depth", 2, 3, default=2)  # pooling stages: code is 8x8 or 4x4
        first = hp.Choice("filters", [32, 64, 128], default=64)
        code = hp.Choice("code_channels", [8, 16, 32, 64], default=32)
        widths = [first] * (depth - 1) + [code]
        inputs = keras.Input(shape=(32, 32, 3), name="image")
        x = inputs
        for i, w in enumerate(widths, start=1):
            x = layers.Conv2D(w, 3, padding="same", activation="relu", name=f"block{i}_conv")(x)
            x = layers.BatchNormalization(name=f"block{i}_bn")(x)
            x = layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
        encoder = keras.Model(inputs, x, name="encoder")
        code_in = keras.Input(shape=encoder.output.shape[1:], name="code")
        y = code_in
        for w in reversed(widths):
            y = layers.Conv2D(w, 3, padding="same", activation="relu")(y)
            y = layers.BatchNormalization()(y)
            y = layers.UpSampling2D(2)(y)
        y = layers.Conv2D(3, 3, padding="same", activation="sigmoid")(y)
        decoder = keras.Model(code_in, y, name="decoder")
        model = keras.Model(inputs, decoder(encoder(inputs)), name=NAME)
        lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=hp.Choice("loss", ["mse", "mae"], default="mse"))
        return model

    def fit(self, hp: kt.HyperParameters, model: keras.Model, x: Any, y: Any, **kwargs: Any) -> Any:
        return model.fit(x, y, batch_size=hp.Choice("batch_size", [32, 64, 128, 256], default=128), **kwargs)
