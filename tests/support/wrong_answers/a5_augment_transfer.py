"""Plausible wrong answers to a5_augment_transfer and the points each must lose
(read by tests/test_assignments.py).

Each wrong answer is the reference solution of one cell with one realistic mistake edited in (``edit`` checks that
the text it replaces is there, so the corpus cannot drift silently from the reference).

``TRANSFER_MODEL`` differs from the reference in one way the checks accept: it keeps a ``Dropout`` layer when the
rate is 0, where the reference leaves it out. So the reference shows that ``transfer_head_layers`` accepts a head
without ``Dropout`` at rate 0, and every wrong answer built on ``TRANSFER_MODEL`` that keeps that cell's points
shows that it accepts ``Dropout(0)`` too.
"""

from tests.support.harness import WrongAnswer

AUGMENTATION = """def build_augmentation(seed=None):
    size = 96
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(9 / 360, fill_mode="nearest", seed=seed),
            keras.layers.RandomZoom(height_factor=(-0.20, 0.0), seed=seed),
            keras.layers.RandomTranslation(
                height_factor=6 / size, width_factor=12 / size, fill_mode="nearest", seed=seed
            ),
            keras.layers.RandomContrast((0.20, 0.20), value_range=(0.0, 1.0), seed=seed),
        ],
        name="augmentation",
    )
"""

TRANSFER_MODEL = """def build_transfer_model(base, num_classes, augmentation=None, dropout=0.2):
    base.trainable = False
    inputs = keras.Input(shape=base.input_shape[1:])
    x = inputs if augmentation is None else augmentation(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="transfer_model")
"""

PARAM_COUNTS = """def transfer_param_counts(
    base_params, base_batchnorm_params, feature_channels, num_classes, base_frozen, batchnorm_frozen=False
):
    head = (feature_channels + 1) * num_classes
    if base_frozen:
        return head, base_params
    frozen_in_base = base_batchnorm_params * (2 if batchnorm_frozen else 1)
    return base_params - frozen_in_base + head, frozen_in_base
"""

FINE_TUNE = """def fine_tune(
    model, base, train_data, val_data, head_epochs, fine_tune_epochs, head_lr=1e-3, fine_tune_lr=1e-5
):
    loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]

    base.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(head_lr), loss=loss, metrics=metrics)
    history1 = model.fit(train_data, validation_data=val_data, epochs=head_epochs, verbose=0)

    base.trainable = True
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(fine_tune_lr), loss=loss, metrics=metrics)
    history2 = model.fit(train_data, validation_data=val_data, epochs=head_epochs + fine_tune_epochs,
                         initial_epoch=head_epochs, verbose=0)
    return history1, history2
"""

PART_A = {
    "augmentation_layer_order": 1,
    "augmentation_flip": 1,
    "augmentation_rotation": 2,
    "augmentation_zoom": 1,
    "augmentation_translation": 2,
    "augmentation_contrast": 2,
    "augmentation_fill_mode": 1,
    "augmentation_training_only": 1,
    "augmentation_seeded": 1,
}


def edit(source: str, *changes: tuple[str, str]) -> str:
    """``source`` with each (old, new) replacement made; every ``old`` must occur in it."""
    for old, new in changes:
        if old not in source:
            raise ValueError(f"wrong-answer edit does not apply: {old!r}")
        source = source.replace(old, new)
    return source


def augmentation(*changes):
    return {"build_augmentation_code": edit(AUGMENTATION, *changes)}


def transfer_model(*changes):
    return {"build_transfer_model_code": edit(TRANSFER_MODEL, *changes)}


def param_counts(*changes):
    return {"transfer_param_counts_code": edit(PARAM_COUNTS, *changes)}


def fine_tune(*changes):
    return {"fine_tune_code": edit(FINE_TUNE, *changes)}


WRONG_ANSWERS = [
    # ---------------------------------------------------------------------------------- Part A: augmentation
    WrongAnswer(
        name="rotation_in_degrees",
        mistake="passes the angle in degrees, RandomRotation(9): Keras 3 refuses factors outside [-1, 1], so the "
        "function raises and every check of Part A fails",
        replace=augmentation(("RandomRotation(9 / 360,", "RandomRotation(9,")),
        loses=dict(PART_A),
    ),
    WrongAnswer(
        name="rotation_degrees_as_percent",
        mistake="reads the lecture's 'rotate by 5%' as percent of degrees: 9 degrees -> factor 0.09 (32 degrees)",
        replace=augmentation(("RandomRotation(9 / 360,", "RandomRotation(0.09,")),
        loses={"augmentation_rotation": 2},
    ),
    WrongAnswer(
        name="vertical_flips_too",
        mistake="flips upside down as well (mode 'horizontal_and_vertical')",
        replace=augmentation(('RandomFlip("horizontal"', 'RandomFlip("horizontal_and_vertical"')),
        loses={"augmentation_flip": 1},
    ),
    WrongAnswer(
        name="zoom_in_and_out",
        mistake="RandomZoom(0.2): zooms out as well as in",
        replace=augmentation(("RandomZoom(height_factor=(-0.20, 0.0),", "RandomZoom(0.20,")),
        loses={"augmentation_zoom": 1},
    ),
    WrongAnswer(
        name="translation_height_width_swapped",
        mistake="swaps the vertical and horizontal shifts (12 pixels up/down, 6 left/right)",
        replace=augmentation(
            ("height_factor=6 / size, width_factor=12 / size", "height_factor=12 / size, width_factor=6 / size")
        ),
        loses={"augmentation_translation": 2},
    ),
    WrongAnswer(
        name="contrast_single_number",
        mistake="RandomContrast(0.2): in Keras 3 a single number only raises the contrast (factor in [1, 1.2])",
        replace=augmentation(("RandomContrast((0.20, 0.20),", "RandomContrast(0.20,")),
        loses={"augmentation_contrast": 2},
    ),
    WrongAnswer(
        name="fill_mode_default",
        mistake="leaves fill_mode at its default 'reflect' for the rotation and the translation",
        replace=augmentation((', fill_mode="nearest"', "")),
        loses={"augmentation_fill_mode": 1},
    ),
    WrongAnswer(
        name="translation_before_zoom",
        mistake="puts the translation before the zoom (the lecture's order, not the specification's)",
        replace=augmentation(
            (
                """            keras.layers.RandomZoom(height_factor=(-0.20, 0.0), seed=seed),
            keras.layers.RandomTranslation(
                height_factor=6 / size, width_factor=12 / size, fill_mode="nearest", seed=seed
            ),
""",
                """            keras.layers.RandomTranslation(
                height_factor=6 / size, width_factor=12 / size, fill_mode="nearest", seed=seed
            ),
            keras.layers.RandomZoom(height_factor=(-0.20, 0.0), seed=seed),
""",
            )
        ),
        loses={"augmentation_layer_order": 1},
    ),
    WrongAnswer(
        name="seed_only_on_flip",
        mistake="passes the seed to the first layer only, so the other layers draw differently every time",
        replace=augmentation(
            (", seed=seed", ""), ('RandomFlip("horizontal")', 'RandomFlip("horizontal", seed=seed)')
        ),
        loses={"augmentation_seeded": 1},
    ),
    WrongAnswer(
        name="rescaling_in_front",
        mistake="adds Rescaling(1 / 255) in front although the images are already in [0, 1]",
        replace=augmentation(
            (
                "        [\n            keras.layers.RandomFlip",
                "        [\n            keras.layers.Rescaling(1 / 255),\n            keras.layers.RandomFlip",
            )  # fmt: skip
        ),
        loses={"augmentation_layer_order": 1, "augmentation_training_only": 1},
    ),
    # ---------------------------------------------------------------------------------- Part B: transfer model
    WrongAnswer(
        name="base_not_frozen",
        mistake="forgets to freeze the base",
        replace=transfer_model(("    base.trainable = False\n", "")),
        loses={"transfer_base_frozen": 2},
    ),
    WrongAnswer(
        name="base_called_without_training_false",
        mistake="calls the base as base(x); in Keras 3 this behaves the same here (the base is frozen), "
        "so only the graph check sees it",
        replace=transfer_model(("base(x, training=False)", "base(x)")),
        loses={"transfer_base_called_in_inference_mode": 1},
    ),
    WrongAnswer(
        name="head_relu_activation",
        mistake="gives the new Dense layer a ReLU instead of softmax",
        replace=transfer_model(('activation="softmax"', 'activation="relu"')),
        loses={"transfer_head_layers": 2, "transfer_predictions": 2},
    ),
    WrongAnswer(
        name="head_ten_units",
        mistake="keeps ten output units (as for CIFAR-10) instead of num_classes",
        replace=transfer_model(("Dense(num_classes,", "Dense(10,")),
        loses={"transfer_head_layers": 2, "transfer_predictions": 2},
    ),
    WrongAnswer(
        name="dropout_rate_ignored",
        mistake="writes Dropout(0.2) instead of using the dropout argument",
        replace=transfer_model(("Dropout(dropout)", "Dropout(0.2)")),
        loses={"transfer_head_layers": 2},
    ),
    WrongAnswer(
        name="dropout_left_out",
        mistake="leaves the Dropout layer out whatever the rate (only right when dropout is 0)",
        replace=transfer_model(("    x = keras.layers.Dropout(dropout)(x)\n", "")),
        loses={"transfer_head_layers": 2},
    ),
    WrongAnswer(
        name="augmentation_ignored",
        mistake="never applies the augmentation argument",
        replace=transfer_model(("x = inputs if augmentation is None else augmentation(inputs)", "x = inputs")),
        loses={"transfer_augmentation_first": 2},
    ),
    WrongAnswer(
        name="source_lecture_head",
        mistake="copies the source lecture's construction: the head on base.output, the model from base.input, so "
        "the base is never called (no training=False) and the augmentation has nowhere to go",
        replace=transfer_model(
            (
                """    inputs = keras.Input(shape=base.input_shape[1:])
    x = inputs if augmentation is None else augmentation(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
""",
                "    x = keras.layers.GlobalAveragePooling2D()(base.output)\n",
            ),
            ('keras.Model(inputs, outputs, name="transfer_model")', "keras.Model(base.input, outputs)"),
        ),
        loses={
            "transfer_base_called_in_inference_mode": 1,
            "transfer_head_layers": 2,
            "transfer_augmentation_first": 2,
        },
    ),
    # ---------------------------------------------------------------------------------- Part C: counts
    WrongAnswer(
        name="batchnorm_statistics_trainable",
        mistake="counts the BN moving means and variances as trainable once the whole base is unfrozen",
        replace=param_counts(
            (
                "    frozen_in_base = base_batchnorm_params * (2 if batchnorm_frozen else 1)\n",
                "    frozen_in_base = 2 * base_batchnorm_params if batchnorm_frozen else 0\n",
            )
        ),
        loses={"param_counts_unfrozen_base": 2},
    ),
    WrongAnswer(
        name="head_without_biases",
        mistake="counts the head's kernel but not its biases: feature_channels * num_classes",
        replace=param_counts(("(feature_channels + 1) * num_classes", "feature_channels * num_classes")),
        loses={
            "param_counts_frozen_base": 2,
            "param_counts_unfrozen_base": 2,
            "param_counts_batchnorm_kept_frozen": 2,
        },
    ),
    WrongAnswer(
        name="batchnorm_gamma_beta_forgotten",
        mistake="with the BN layers kept frozen, leaves their gamma and beta on the trainable side",
        replace=param_counts(("(2 if batchnorm_frozen else 1)", "1")),
        loses={"param_counts_batchnorm_kept_frozen": 2},
    ),
    # ---------------------------------------------------------------------------------- Part D: fine-tuning
    WrongAnswer(
        name="phase1_base_not_frozen",
        mistake="relies on the caller having frozen the base and does not freeze it in phase 1",
        replace=fine_tune(("    base.trainable = False\n", "")),
        loses={"fine_tune_phase1_trains_head_only": 2},
    ),
    WrongAnswer(
        name="phase2_same_learning_rate",
        mistake="recompiles phase 2 with the high learning rate of phase 1",
        replace=fine_tune(("Adam(fine_tune_lr)", "Adam(head_lr)")),
        loses={"fine_tune_phase2_learning_rate": 2},
    ),
    WrongAnswer(
        name="phase2_base_not_unfrozen",
        mistake="recompiles and fits again but never unfreezes the base",
        replace=fine_tune(("    base.trainable = True\n", "")),
        loses={"fine_tune_phase2_updates_base": 2},
    ),
    WrongAnswer(
        name="phase2_not_recompiled",
        mistake="unfreezes the base but does not compile again: fit keeps phase 1's training step and optimizer",
        replace=fine_tune(
            (
                "    model.compile(optimizer=keras.optimizers.Adam(fine_tune_lr), loss=loss, metrics=metrics)\n",
                "",
            )
        ),
        loses={"fine_tune_phase2_updates_base": 2, "fine_tune_phase2_learning_rate": 2},
    ),
    WrongAnswer(
        name="phase2_batchnorm_unfrozen",
        mistake="unfreezes every layer as the source lecture does, BN included, so fit updates the BN statistics",
        replace=fine_tune(
            (
                """    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
""",
                "",
            )
        ),
        loses={"fine_tune_keeps_batchnorm_statistics": 2},
    ),
    WrongAnswer(
        name="phase2_epochs_restart",
        mistake="fits phase 2 with epochs=fine_tune_epochs and no initial_epoch, so its epochs restart at 0",
        replace=fine_tune(
            (
                "epochs=head_epochs + fine_tune_epochs,\n                         initial_epoch=head_epochs,",
                "epochs=fine_tune_epochs,",
            )
        ),
        loses={"fine_tune_histories": 2},
    ),
]


# Graded only in the full run: `python -m tests.support.harness a5_augment_transfer`, or pytest with
# CNNBOOK_FULL_CORPUS=1. Each takes the same cells as another entry in a different way; CI grades the rest, to
# keep its time in bounds.
FULL_CORPUS_ONLY = {
    "rotation_degrees_as_percent",
    "zoom_in_and_out",
    "contrast_single_number",
    "seed_only_on_flip",
    "rescaling_in_front",
    "head_ten_units",
    "dropout_rate_ignored",
    "dropout_left_out",
    "head_without_biases",
    "batchnorm_gamma_beta_forgotten",
    "phase2_epochs_restart",
}
