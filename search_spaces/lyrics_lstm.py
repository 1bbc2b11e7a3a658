"""Single-layer LSTM on learned word embeddings.

Defaults = the earlier study: Embedding(20000, 100) -> LSTM(10, return
sequences) -> Flatten -> BatchNorm -> Dropout 0.2 -> Dense softmax; Adam 1e-3,
categorical cross-entropy, batch 1000, up to 20 epochs, early stopping on
validation loss (patience 5, in the engine).
"""

import keras
from keras import layers

from search_spaces._lyrics import (LyricsHyperModel, classifier_head, compile_model, embedding,
                                   lyrics_inputs)

NAME = "lyrics_lstm"
TASK = "lyrics"
ENGINE = "keras_tuner"
DESCRIPTION = "LSTM over learned word embeddings (earlier study: LSTM(10), flatten, dropout 0.2)"
INPUTS = "sequences"
EPOCHS = 20


class HyperModel(LyricsHyperModel):
    batch_size_default = 1000

    def build(self, hp):
        inputs = lyrics_inputs(self.spec)
        x = embedding(hp, self.spec, default_dim=100)(inputs["lyrics"])
        units = hp.Choice("lstm_units", [10, 32, 64, 128], default=10)
        # "flatten" keeps every time step's output (the earlier study);
        # "last_state" classifies from the final hidden state only.
        head = hp.Choice("lstm_output", ["flatten", "last_state"], default="flatten")
        if head == "flatten":
            x = layers.LSTM(units, return_sequences=True)(x)
            x = layers.Flatten()(x)
        else:
            x = layers.LSTM(units)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.2))(x)
        model = keras.Model(inputs, classifier_head(hp, x, self.spec), name=NAME)
        return compile_model(model, hp, default_lr=1e-3)
