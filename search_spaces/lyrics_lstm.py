"""Single-layer LSTM on word embeddings.

Defaults = the earlier study: Embedding(20000, 100) -> LSTM(10, return
sequences) -> Flatten -> BatchNorm -> Dropout 0.2 -> Dense softmax; Adam 1e-3,
categorical cross-entropy, batch 1000, up to 20 epochs, early stopping on
validation loss (patience 5, in the engine).
"""

import keras
import keras_tuner as kt
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import LyricsHyperModel, dropout_rate

NAME = "lyrics_lstm"


@register_family(NAME, task="lyrics",
                 description="LSTM over word embeddings (earlier study: LSTM(10), flatten, dropout 0.2)",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = self.words(hp)
        units = hp.Choice("lstm_units", [10, 32, 64, 128], default=10)
        # "flatten" keeps every time step's output (the earlier study);
        # "last_state" classifies from the final hidden state only.
        if hp.Choice("lstm_output", ["flatten", "last_state"], default="flatten") == "flatten":
            x = layers.Flatten()(layers.LSTM(units, return_sequences=True)(x))
        else:
            x = layers.LSTM(units)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout_rate(hp, 0.2))(x)
        return self.genre_model(hp, inputs, x, NAME)
