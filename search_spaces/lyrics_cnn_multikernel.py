"""1-D CNN with a different kernel size per block, or per parallel branch.

Defaults = the earlier study: the lyrics_cnn stack with kernel sizes 3 / 4 / 5
in its three blocks. The alternative layout runs the kernel sizes as parallel
branches over the embeddings, each conv -> BatchNorm -> ReLU -> global max
pool, concatenated (Kim, 2014).
"""

import keras
import keras_tuner as kt
from keras import layers

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import LyricsHyperModel, conv_stack, dropout_rate

NAME = "lyrics_cnn_multikernel"
KERNEL_SETS = {"3-4-5": (3, 4, 5), "2-3-4": (2, 3, 4), "3-5-7": (3, 5, 7)}


@register_family(NAME, task="lyrics",
                 description="1-D CNN, kernels 3/4/5: stacked blocks (earlier study) or parallel branches (Kim 2014)",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = self.words(hp)
        kernels = KERNEL_SETS[hp.Choice("kernel_sizes", list(KERNEL_SETS), default="3-4-5")]
        if hp.Choice("layout", ["stacked", "parallel"], default="stacked") == "stacked":
            # block i uses kernels[i], the last size repeating for a fourth block
            x = conv_stack(hp, x, kernel_sizes=lambda n: [kernels[min(i, 2)] for i in range(n)])
            x = layers.Flatten()(x)
        else:
            with hp.conditional_scope("layout", ["parallel"]):
                filters = hp.Choice("branch_filters", [25, 50, 100], default=50)
            branches = []
            for k in kernels:
                b = layers.Conv1D(filters, k, padding="same")(x)
                b = layers.Activation("relu")(layers.BatchNormalization()(b))
                branches.append(layers.GlobalMaxPooling1D()(b))
            x = layers.Dropout(dropout_rate(hp, 0.2))(layers.Concatenate()(branches))
        x = layers.Dense(hp.Choice("dense_units", [25, 50, 100, 200], default=50), activation="relu")(x)
        return self.genre_model(hp, inputs, x, NAME)
