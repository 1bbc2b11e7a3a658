"""Stacked LSTMs on word embeddings.

Defaults = the earlier study: Embedding(20000, 100) -> LSTM(10, return
sequences) -> BatchNorm -> Dropout 0.2 -> LSTM(10) -> Dense softmax;
Adam 1e-3, batch 1000.
"""

import keras
import keras_tuner as kt
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import LyricsHyperModel, dropout_rate

NAME = "lyrics_stacked_lstm"


@register_family(NAME, task="lyrics",
                 description="2-4 stacked LSTMs (earlier study: LSTM(10) -> BN -> dropout 0.2 -> LSTM(10))",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = self.words(hp)
        n_layers = hp.Int("lstm_layers", 2, 4, default=2)
        dropout = dropout_rate(hp, 0.2)
        recurrent_dropout = hp.Float("recurrent_dropout", 0.0, 0.4, step=0.1, default=0.0)
        for i in range(n_layers):
            last = i == n_layers - 1
            with hp.conditional_scope("lstm_layers", list(range(max(i + 1, 2), 5))):  # only layers that exist
                units = hp.Choice(f"lstm_units_{i + 1}", [10, 32, 64, 128], default=10)
            x = layers.LSTM(units, return_sequences=not last, recurrent_dropout=recurrent_dropout)(x)
            if not last:  # between LSTMs, as the earlier study did after the first
                x = layers.BatchNormalization()(x)
                x = layers.Dropout(dropout)(x)
        return self.genre_model(hp, inputs, x, NAME)
