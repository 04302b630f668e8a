"""A pass-through Keras layer that counts the training images flowing through it (used by a4's graded run).

``keras.Sequential([keras.Input(shape), ImageCounter(), model])`` trains exactly like ``model``; the counter's
``seen`` weight grows by the batch size at every training step (``training=True``) and stays put in inference
(``predict``, ``evaluate``, validation). Because the count is a weight, it survives a round trip of the model
through its config and weights, which is how the autograder's sandbox returns a trained model.

Imported on demand (it imports Keras); the class is registered as ``cnnbook>ImageCounter``.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="cnnbook")
class ImageCounter(keras.layers.Layer):
    """Returns its input unchanged; counts the images of every training batch in the weight ``seen``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = self.add_weight(shape=(), initializer="zeros", dtype="float32", trainable=False, name="seen")

    def call(self, inputs, training=None):
        if training:
            batch = keras.ops.cast(keras.ops.shape(inputs)[0], "float32")
            self.seen.assign(self.seen + batch)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    @property
    def count(self) -> int:
        """The number of training images counted so far."""
        return int(keras.ops.convert_to_numpy(self.seen))
