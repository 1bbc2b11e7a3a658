"""Simple recurrent network on word embeddings.

Defaults = the earlier study: Embedding(20000, 100) -> SimpleRNN(10) ->
BatchNorm -> Dropout 0.2 -> Dense softmax; Adam 1e-3, batch 1000.
"""

import keras
import keras_tuner as kt
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import LyricsHyperModel, dropout_rate

NAME = "lyrics_rnn"


@register_family(NAME, task="lyrics",
                 description="SimpleRNN over word embeddings (earlier study: SimpleRNN(10), dropout 0.2)",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = self.words(hp)
        rnn = layers.SimpleRNN(hp.Choice("rnn_units", [10, 32, 64, 128], default=10))
        if hp.Boolean("bidirectional", default=False):
            rnn = layers.Bidirectional(rnn)
        x = rnn(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout_rate(hp, 0.2))(x)
        return self.genre_model(hp, inputs, x, NAME)
