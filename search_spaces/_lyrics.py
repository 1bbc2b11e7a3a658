"""Building blocks shared by the lyrics Keras families (not a family itself).

`spec` is what a family needs to know about the data:
    vocab_size, seq_len, n_classes      the tokenised lyrics
    with_artist, n_artists              the artist input (--with-artist)
    pretrained                          embedding matrix [vocab_size, dim] (GloVe)

Every family's build(hp) follows the same outline:
    inputs, x = self.words(hp)                # the inputs, and word vectors learned or pre-trained
    ... the family's own layers ...
    return self.genre_model(hp, inputs, x, NAME)   # the genre head (and the artist), compiled
"""

from typing import Any

import keras
import keras_tuner as kt
from keras import layers

from lyrics_cifar_search.search_spaces._layers import KnownWordsOnly
from lyrics_cifar_search.search_spaces._metrics import classification_metrics

EMBEDDING_SOURCES = ("learned", "glove_frozen", "glove_finetuned")


class LyricsHyperModel(kt.HyperModel):
    """Base of the lyrics hypermodels: data spec, batch size, one-hot targets.

    The earlier study trained with categorical cross-entropy on one-hot
    genres; the engine hands over integer labels and `fit` converts them.
    """

    batch_size_default = 1000
    batch_sizes = (32, 128, 512, 1000)

    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def words(self, hp, **embedding):
        """Where build() starts: the model's inputs (lyrics_inputs) and the lyrics' word vectors
        (word_embedding, with its keyword arguments), as (inputs, x)."""
        inputs = lyrics_inputs(self.spec)
        return inputs, word_embedding(hp, self.spec, inputs, **embedding)

    def genre_model(self, hp, inputs, x, name, default_lr=1e-3):
        """Where build() ends: the genre head on x (joining the artist, with --with-artist), compiled with the
        searched learning rate (the earlier study's: 1e-3)."""
        model = keras.Model(inputs, genre_head(hp, self.spec, inputs, x), name=name)
        return compile_model(model, hp, default_lr=default_lr)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, x: Any, y: Any, validation_data: Any = None,
            **kwargs: Any) -> Any:
        n = self.spec["n_classes"]
        if validation_data is not None:
            xv, yv = validation_data
            validation_data = (xv, keras.utils.to_categorical(yv, n))
        batch_size = hp.Choice("batch_size", list(self.batch_sizes), default=self.batch_size_default)
        return model.fit(x, keras.utils.to_categorical(y, n), batch_size=batch_size,
                         validation_data=validation_data, **kwargs)


def lyrics_inputs(spec):
    """The model's named inputs; the engine feeds a dict with the same keys."""
    inputs = {"lyrics": keras.Input(shape=(spec["seq_len"],), dtype="int32", name="lyrics")}
    if spec.get("with_artist"):
        # id 0 is the bucket for artists not seen in training
        inputs["artist"] = keras.Input(shape=(1,), dtype="int32", name="artist")
    return inputs


def word_embedding(hp, spec, inputs, default_dim=100, sources=EMBEDDING_SOURCES, default_source="learned",
                   mask_padding=False):
    """Word vectors of the lyrics: [batch, seq_len, dim].

    `embedding_source` answers "learned on the fly or pre-trained?" in every
    family: learned from scratch, GloVe frozen, or GloVe fine-tuned.
    mask_padding: later layers that honour Keras masks (an average pooling)
    skip the padding positions (id 0).
    """
    source = hp.Choice("embedding_source", list(sources), default=default_source)
    if source == "learned":
        with hp.conditional_scope("embedding_source", ["learned"]):
            dim = hp.Choice("embedding_dim", [32, 50, 100, 200], default=default_dim)
        x = layers.Embedding(spec["vocab_size"], dim, mask_zero=mask_padding, name="word_embedding")(inputs["lyrics"])
    else:
        matrix = spec["pretrained"]
        layer = layers.Embedding(spec["vocab_size"], matrix.shape[1], trainable=source == "glove_finetuned",
                                 mask_zero=mask_padding, name="word_embedding")
        x = layer(inputs["lyrics"])
        layer.set_weights([matrix])  # set after the call built it: keeps the matrix out of the config
        if mask_padding:
            # Words the vectors lack have zero rows (study_data.embeddings): masked like the padding, so an
            # average of the words leaves them out instead of pulling every song's vector toward zero. They
            # get no gradient there, so fine-tuning keeps them at zero, and masked.
            x = KnownWordsOnly(name="known_words_only")(x)
    if spec.get("with_artist") and artist_join(hp) == "early":
        # the artist vector joins every word vector
        artist = layers.UpSampling1D(spec["seq_len"])(_artist_vector(hp, spec, inputs))
        x = layers.Concatenate(name="words_and_artist")([x, artist])
    return x


def genre_head(hp, spec, inputs, x):
    """Softmax over genres from the lyrics representation [batch, features];
    with --with-artist and a late join, the artist vector is appended first."""
    if spec.get("with_artist") and artist_join(hp) == "late":
        artist = layers.Flatten(name="artist_vector")(_artist_vector(hp, spec, inputs))
        x = layers.Concatenate(name="lyrics_and_artist")([x, artist])
    return layers.Dense(spec["n_classes"], activation="softmax", name="genre")(x)


def artist_join(hp, choices=("late", "early")):
    """Where the artist vector joins: "late" beside the lyrics representation, into the softmax; "early"
    beside every word vector; "before_dense" (the embedding families, whose first call declares it) beside
    the pooled words, before the dense layer, as the earlier study's embedding and NNLM artist models did."""
    return hp.Choice("artist_join", list(choices), default=choices[0])


def _artist_vector(hp, spec, inputs):
    dim = hp.Choice("artist_embedding_dim", [4, 8, 16, 32], default=8)
    return layers.Embedding(spec["n_artists"], dim, name="artist_embedding")(inputs["artist"])


def conv_block(x, filters, kernel_size, pooling="max", dropout=0.2, padding="valid"):
    """Conv1D -> BatchNorm -> ReLU -> pool 2 -> dropout (the earlier study's CNN block).

    The earlier study's padding is "valid": each block shortens the sequence by
    kernel_size - 1 before pooling halves it (300 steps -> 35 after three
    blocks of kernel 3). "same" keeps short sequences long enough for deep stacks."""
    steps = x.shape[1]
    if padding == "valid" and steps is not None and (steps - kernel_size + 1) // 2 < 1:
        raise ValueError(f"a sequence of {steps} steps is too short for another conv block of kernel "
                         f"{kernel_size} with valid padding; use a longer --seq-len")
    x = layers.Conv1D(filters, kernel_size, padding=padding)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = (layers.MaxPooling1D(2) if pooling == "max" else layers.AveragePooling1D(2))(x)
    return layers.Dropout(dropout)(x)


def dropout_rate(hp, default=0.2):
    return hp.Float("dropout", 0.0, 0.6, step=0.1, default=default)


def compile_model(model, hp, default_lr=1e-3):
    lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=default_lr)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="categorical_crossentropy",
                  metrics=classification_metrics(model.output_shape[-1]))
    return model


def pooled_dense_head(hp, spec, inputs, x, pooling, dropout_before_dense=True, dropout=0.2):
    """Global pooling -> [Dropout] -> [the artist vector joined] -> Dense ReLU -> Dropout (the embedding
    families' head).

    The earlier study's learned-embedding model drops out before and after its
    Dense 64; its pre-trained one (a sentence vector into Dense 64) only after.
    Its artist models joined the artist before the Dense 64, with no dropout
    before it (the NNLM one: Dropout 0.5 after)."""
    if pooling == "both":
        x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    else:
        x = (layers.GlobalAveragePooling1D() if pooling == "average" else layers.GlobalMaxPooling1D())(x)
    dropout = dropout_rate(hp, dropout)
    if hp.Boolean("dropout_before_dense", default=dropout_before_dense):
        x = layers.Dropout(dropout)(x)
    if spec.get("with_artist") and artist_join(hp) == "before_dense":
        artist = layers.Flatten(name="artist_vector")(_artist_vector(hp, spec, inputs))
        x = layers.Concatenate(name="pooled_and_artist")([x, artist])
    x = layers.Dense(hp.Choice("dense_units", [16, 32, 64, 128, 256], default=64), activation="relu")(x)
    return layers.Dropout(dropout)(x)


def conv_stack(hp, x, kernel_sizes):
    """1-4 conv blocks (earlier study: 3 blocks of 25, 25, 30 filters).

    kernel_sizes(n_blocks) gives each block's kernel; filters, pooling and
    dropout are searched here, the same way for every CNN family.
    """
    n_blocks = hp.Int("conv_blocks", 1, 4, default=3)
    pooling = hp.Choice("pooling", ["max", "average"], default="max")
    padding = hp.Choice("conv_padding", ["valid", "same"], default="valid")
    dropout = dropout_rate(hp, 0.2)
    default_filters = (25, 25, 30, 30)
    for i, kernel in enumerate(kernel_sizes(n_blocks)):
        with hp.conditional_scope("conv_blocks", list(range(i + 1, 5))):  # only blocks that exist
            filters = hp.Choice(f"filters_{i + 1}", [16, 25, 30, 32, 64, 128], default=default_filters[i])
        x = conv_block(x, filters, kernel, pooling, dropout, padding)
    return x
