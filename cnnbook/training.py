"""One way to train and report, used by every training cell (introduced in lecture 05).

:func:`train_and_report` fits a compiled Keras model, evaluates it on the test set and prints one line with the
profile, the dataset actually used (real or stand-in), the epochs, the wall time and the test accuracy, so a
reader can always tell where a number comes from. Where a dataset has no test split and its validation images are
evaluated instead (the flowers of lecture 08), the line says "validation accuracy": no page shows the accuracy of
a split that does not exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .profiles import Profile


@dataclass
class Result:
    """What a training run produced: the Keras ``History``, test loss and accuracy, wall time in seconds.

    ``split`` names the data the loss and accuracy were measured on: ``"test"``, or ``"validation"`` when the run
    was evaluated on its validation data (no test split).
    """

    label: str
    history: object
    test_loss: float
    test_accuracy: float
    seconds: float
    epochs: int
    split: str = "test"

    def line(self, profile: Profile, data: str) -> str:
        """The result first (test accuracy, epochs, time), then on its own line how it was obtained: short enough
        to read without scrolling on the site and in Colab."""
        return (
            f"{self.label + ': ' if self.label else ''}{self.split} accuracy {self.test_accuracy:.3f} | "
            f"{self.epochs} epoch(s) in {self.seconds:.1f} s\n    profile {profile.name} | data {data}"
        )


def _split(data):
    """``(x, y)`` tuples go to Keras as x and y; a ``tf.data.Dataset`` goes as x alone."""
    if isinstance(data, tuple) and len(data) == 2:
        return data[0], data[1]
    return data, None


def train_and_report(model, train, *, test, profile: Profile, data: str, epochs: int, validation=None,
                     label: str = "", batch_size: int | None = 128, **fit_kwargs) -> Result:  # fmt: skip
    """Fit ``model`` on ``train``, evaluate on ``test`` and print one summary line; return a :class:`Result`.

    ``train`` and ``test`` are ``(x, y)`` tuples or ``tf.data`` datasets (then ``batch_size`` is ignored).
    ``validation`` is a tuple, a dataset, or a float (the fraction of ``train`` held out). ``data`` describes
    the dataset used, e.g. ``ds.describe()``; ``epochs`` should come from the profile (``profile.epochs(n)`` or
    ``profile.pick(...)``) and may not exceed its cap (``profile.max_epochs``). When ``test`` is ``validation``
    (a dataset without a test split), the line reports a validation accuracy. The model must be compiled with
    ``metrics=["accuracy"]``.
    """
    profile.check_epochs(epochs)
    split = "validation" if test is validation else "test"
    x, y = _split(train)
    x_test, y_test = _split(test)
    if y is None:
        batch_size = None
    kwargs = dict(epochs=epochs, batch_size=batch_size, verbose=0, **fit_kwargs)
    if isinstance(validation, float):
        kwargs["validation_split"] = validation
    elif validation is not None:
        kwargs["validation_data"] = validation
    start = time.perf_counter()
    history = model.fit(x, y, **kwargs)
    seconds = time.perf_counter() - start
    scores = model.evaluate(x_test, y_test, verbose=0, return_dict=True,
                            **({"batch_size": batch_size} if y_test is not None else {}))  # fmt: skip
    if "accuracy" not in scores:
        raise ValueError("compile the model with metrics=['accuracy'] so its test accuracy can be reported")
    result = Result(label, history, float(scores["loss"]), float(scores["accuracy"]), seconds,
                    len(history.history.get("loss", [])), split)  # fmt: skip
    print(result.line(profile, data), flush=True)
    return result
