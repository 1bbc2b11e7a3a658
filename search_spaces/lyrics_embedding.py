"""Pooled word embeddings with a small dense head.

Defaults = the earlier study: learned Embedding(20000, 100) ->
GlobalAveragePooling over all 300 positions, padding included ->
Dropout 0.2 -> Dense 64 ReLU -> Dropout 0.2 -> Dense softmax; Adam 1e-3,
batch 32. With --with-artist, the study's artist model: the pooled words and
the artist joined -> Dense 64 ReLU -> Dropout 0.2 -> softmax (no dropout
before the Dense; artist_join=before_dense).
"""

import keras
import keras_tuner as kt

from lyrics_cifar_search.search_spaces import register_family
from lyrics_cifar_search.search_spaces._lyrics import (EMBEDDING_SOURCES, LyricsHyperModel, artist_join, lyrics_inputs,
                                                       pooled_dense_head, word_embedding)

NAME = "lyrics_embedding"


@register_family(NAME, task="lyrics",
                 description="learned embedding, global pooling, dense 64 (earlier study's on-the-fly embedding)",
                 inputs="sequences",
                 epochs=20)
class HyperModel(LyricsHyperModel):
    batch_size_default = 32
    model_name = NAME
    sources: tuple[str, ...]
    sources, default_source = EMBEDDING_SOURCES, "learned"  # lyrics_glove keeps the pre-trained ones
    words_only_default = False  # the earlier study averaged over the padding too
    dropout_before_dense_default = True

    artist_dropout_default = 0.2  # the study's embedding + artist model: Dense 64 -> Dropout 0.2

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs = lyrics_inputs(self.spec)
        with_artist = bool(self.spec.get("with_artist"))
        if with_artist:  # declared first, so the study's place for the artist is the default
            artist_join(hp, ("before_dense", "late", "early"))
        pooling = hp.Choice("pooling", ["average", "max", "both"], default="average")
        with hp.conditional_scope("pooling", ["average"]):
            # average over the song's words only, or over every position, padding included
            words_only = hp.Boolean("average_words_only", default=self.words_only_default)
        x = word_embedding(hp, self.spec, inputs, default_dim=100, sources=self.sources,
                           default_source=self.default_source, mask_padding=pooling == "average" and bool(words_only))
        # the study's artist models had no dropout before the Dense 64
        x = pooled_dense_head(hp, self.spec, inputs, x, pooling, self.dropout_before_dense_default and not with_artist,
                              self.artist_dropout_default if with_artist else 0.2)
        return self.genre_model(hp, inputs, x, self.model_name)
