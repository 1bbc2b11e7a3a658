"""Pieces shared by the lyrics Keras families (not a family itself).

`spec` is what a family needs to know about the data:
    {"vocab_size", "seq_len", "n_classes", "with_artist", "n_artists"}
"""

import keras
import keras_tuner as kt
from keras import layers


class LyricsHyperModel(kt.HyperModel):
    """Base of the lyrics hypermodels: data spec, batch size, one-hot targets.

    The earlier study trained with categorical cross-entropy on one-hot
    genres; the engine hands over integer labels and `fit` converts them.
    """

    batch_size_default = 1000
    batch_sizes = (32, 128, 512, 1000)

    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def fit(self, hp, model, x, y, validation_data=None, **kwargs):
        n = self.spec["n_classes"]
        if validation_data is not None:
            xv, yv = validation_data
            validation_data = (xv, keras.utils.to_categorical(yv, n))
        batch_size = hp.Choice("batch_size", list(self.batch_sizes), default=self.batch_size_default)
        return model.fit(x, keras.utils.to_categorical(y, n), batch_size=batch_size,
                         validation_data=validation_data, **kwargs)


def lyrics_inputs(spec):
    """The model's named inputs; the engine feeds a dict with the same keys."""
    return {"lyrics": keras.Input(shape=(spec["seq_len"],), dtype="int32", name="lyrics")}


def embedding(hp, spec, default_dim=100):
    """Learned word embedding; its width is a hyperparameter."""
    dim = hp.Choice("embedding_dim", [32, 50, 100, 200], default=default_dim)
    return layers.Embedding(spec["vocab_size"], dim, name="word_embedding")


def classifier_head(hp, x, spec):
    return layers.Dense(spec["n_classes"], activation="softmax", name="genre")(x)


def compile_model(model, hp, default_lr=1e-3):
    lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=default_lr)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model
