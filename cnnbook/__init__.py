"""cnnbook: the helper library of the CNN course.

Notebooks start with ``profile = cnnbook.setup()`` and then use :mod:`cnnbook.data` for datasets (with offline
stand-ins) and :mod:`cnnbook.viz` for plots. This package teaches and plots; it never holds the functions that
students write in the graded assignments.
"""

from . import data, profiles, viz
from .notice import announce
from .profiles import Profile
from .runtime import device_name, seed_everything, setup

__version__ = "0.1.0"
__all__ = ["Profile", "announce", "data", "device_name", "profiles", "seed_everything", "setup", "viz"]
