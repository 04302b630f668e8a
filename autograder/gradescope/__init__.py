"""Gradescope: ``autograder gradescope ASSIGNMENT`` builds an autograder bundle that grades with this pipeline.

The bundle is a zip with, at its top level (Gradescope's layout)::

    setup.sh          run once, as root, when Gradescope builds the image: Python, bubblewrap, the packages, the
                      datasets, then a check that grades the instructor's solution
    run_autograder    run for each submission: ``python -m autograder.gradescope run``
    gradescope.json   the bundle's settings (assignment, stand-in data, visibility of hidden tests, ...)
    package/          the project's Python packages (autograder, cnnbook) with pyproject.toml and requirements.txt
    course/           a course directory holding only nbgrader_config.py and source/<assignment>/

The modules of this package:

- ``bundle``: builds the zip on the instructor's machine (the ``autograder gradescope`` command);
- ``container``: what runs in Gradescope's container, ``python -m autograder.gradescope run|check``;
- ``messages``: every message a student reads in ``results.json``;
- ``setup.sh``, ``run_autograder``: the bundle's two scripts (package data; ``bundle`` fills in setup.sh's
  ``@NAME@`` placeholders).
"""

from .bundle import build, run

__all__ = ["build", "run"]
