"""1-D CNN with one kernel size for every block.

Defaults = the earlier study: Embedding(20000, 100) -> 3 x [Conv1D (25, 25,
30 filters, kernel 3) -> BatchNorm -> ReLU -> MaxPool 2 -> Dropout 0.2] ->
Flatten -> Dense 50 ReLU -> Dense softmax; Adam 1e-3, batch 1000.
"""

import keras
import keras_tuner as kt
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import LyricsHyperModel, conv_stack

NAME = "lyrics_cnn"


@register_family(NAME, task="lyrics",
                 description="1-D CNN, same kernel in every block "
                             "(earlier study: 3 blocks of 25/25/30 filters, kernel 3)",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = self.words(hp)
        kernel = hp.Choice("kernel_size", [2, 3, 5, 7], default=3)
        x = conv_stack(hp, x, kernel_sizes=lambda n_blocks: [kernel] * n_blocks)
        x = layers.Flatten()(x)
        x = layers.Dense(hp.Choice("dense_units", [25, 50, 100, 200], default=50), activation="relu")(x)
        return self.genre_model(hp, inputs, x, NAME)
