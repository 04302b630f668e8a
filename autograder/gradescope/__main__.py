"""``python -m autograder.gradescope run|check``: the bundle's entry point in Gradescope's container."""

import sys

from .container import main

sys.exit(main())
