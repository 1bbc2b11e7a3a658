"""Convolutions before an LSTM.

Defaults = the earlier study: Embedding(20000, 100) -> the CNN stack (3 blocks
of 25/25/30 filters, kernel 3, max pool 2, dropout 0.2) -> LSTM(10) over the
pooled sequence -> BatchNorm -> Dropout 0.2 -> Dense softmax; Adam 1e-3,
batch 1000.
"""

import keras
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import (LyricsHyperModel, compile_model, conv_stack, dropout_rate,
                                                       genre_head, lyrics_inputs, word_embedding)

NAME = "lyrics_cnn_lstm"


@register_family(NAME, task="lyrics",
                 description="CNN blocks, then an LSTM over the pooled sequence (earlier study: 3 blocks -> LSTM(10))",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    def build(self, hp):
        inputs = lyrics_inputs(self.spec)
        x = word_embedding(hp, self.spec, inputs, default_dim=100)
        x = conv_stack(hp, x, kernel_sizes=lambda n: [3] * n)
        lstm = layers.LSTM(hp.Choice("lstm_units", [10, 32, 64, 128], default=10))
        if hp.Boolean("bidirectional", default=False):
            lstm = layers.Bidirectional(lstm)
        x = lstm(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout_rate(hp, 0.2))(x)
        model = keras.Model(inputs, genre_head(hp, self.spec, inputs, x), name=NAME)
        return compile_model(model, hp, default_lr=1e-3)
