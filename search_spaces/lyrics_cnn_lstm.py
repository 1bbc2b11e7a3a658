"""Convolutions before an LSTM.

Defaults = the earlier study: Embedding(20000, 100) -> the CNN stack (3 blocks
of 25/25/30 filters, kernel 3, max pool 2, dropout 0.2) -> LSTM(10) over the
pooled sequence -> BatchNorm -> Dropout 0.2 -> Dense softmax; Adam 1e-3,
batch 1000.
"""

import keras
import keras_tuner as kt
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import LyricsHyperModel, conv_stack, dropout_rate

NAME = "lyrics_cnn_lstm"


@register_family(NAME, task="lyrics",
                 description="CNN blocks, then an LSTM over the pooled sequence (earlier study: 3 blocks -> LSTM(10))",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = self.words(hp)
        x = conv_stack(hp, x, kernel_sizes=lambda n: [3] * n)
        lstm = layers.LSTM(hp.Choice("lstm_units", [10, 32, 64, 128], default=10))
        if hp.Boolean("bidirectional", default=False):
            lstm = layers.Bidirectional(lstm)
        x = lstm(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout_rate(hp, 0.2))(x)
        return self.genre_model(hp, inputs, x, NAME)
