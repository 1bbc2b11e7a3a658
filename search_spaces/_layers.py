"""Layers the families share that Keras does not ship as they are needed.

Registered for saving: a saved model that uses one loads once this module is
imported (runners/best_model.py and cifar_transfer do).
"""

import keras


@keras.saving.register_keras_serializable(package="search_suite")
class RandomTranslation(keras.layers.RandomTranslation):
    """Keras's RandomTranslation, compiled with the rest of the model on JAX.

    Keras marks the layer unjittable on every backend because TensorFlow's
    projective-transform op has no XLA kernel, and one unjittable layer makes
    Keras train the whole model op by op. On JAX the transform is plain
    jax.numpy. Op by op, a small CNN trained several times slower, and every
    op was compiled and kept per shape, so memory grew trial after trial
    (measured: README, "Performance"; bench/README.md). The
    random offsets come from the layer's seed generator, whose state the
    compiled step carries like any other variable.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_jit = keras.backend.backend() == "jax"


@keras.saving.register_keras_serializable(package="search_suite")
class KnownWordsOnly(keras.layers.Layer):
    """Masks the positions whose word vector is all zeros (a word the pre-trained vectors lack), on top of the
    mask it is given (the padding): a masked average then leaves both out. Its values pass through unchanged.
    (Keras's Masking layer would drop the padding mask it is given.)"""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return inputs

    def compute_mask(self, inputs, mask=None):
        known = keras.ops.any(keras.ops.not_equal(inputs, 0), axis=-1)
        return known if mask is None else keras.ops.logical_and(mask, known)

