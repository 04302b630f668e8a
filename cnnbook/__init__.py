"""cnnbook: the helper library of the CNN course.

Notebooks start with ``profile = cnnbook.setup()`` and then use :mod:`cnnbook.data` for datasets (with offline
stand-ins) and :mod:`cnnbook.viz` for plots. This package teaches and plots; it never holds the functions that
students write in the graded assignments.
"""

from .runtime import prepare_environment

prepare_environment()  # before anything imports TensorFlow: Keras backend, quiet C++ logs

from . import data, profiles, training, viz  # noqa: E402
from .notice import announce  # noqa: E402
from .profiles import Profile  # noqa: E402
from .runtime import device_name, seed_everything, setup  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Profile", "announce", "data", "device_name", "profiles", "seed_everything", "setup", "training", "viz"]
