"""Simple recurrent network on word embeddings.

Defaults = the earlier study: Embedding(20000, 100) -> SimpleRNN(10) ->
BatchNorm -> Dropout 0.2 -> Dense softmax; Adam 1e-3, batch 1000.
"""

import keras
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import (LyricsHyperModel, compile_model, dropout_rate, genre_head,
                                                       lyrics_inputs, word_embedding)

NAME = "lyrics_rnn"


@register_family(NAME, task="lyrics",
                 description="SimpleRNN over word embeddings (earlier study: SimpleRNN(10), dropout 0.2)",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    def build(self, hp):
        inputs = lyrics_inputs(self.spec)
        x = word_embedding(hp, self.spec, inputs, default_dim=100)
        rnn = layers.SimpleRNN(hp.Choice("rnn_units", [10, 32, 64, 128], default=10))
        if hp.Boolean("bidirectional", default=False):
            rnn = layers.Bidirectional(rnn)
        x = rnn(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout_rate(hp, 0.2))(x)
        model = keras.Model(inputs, genre_head(hp, self.spec, inputs, x), name=NAME)
        return compile_model(model, hp, default_lr=1e-3)
