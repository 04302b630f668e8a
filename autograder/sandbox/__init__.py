"""The sandbox: student code runs in a bubblewrap process of its own; the grader talks to it over a data-only wire.

Modules (the design is in ``autograder/SANDBOX.md``):

``isolation``  bubblewrap's command line, whether the sandbox works here, the grader's drop of root
``process``    start a student's sandboxed process and talk to it (the grader's side; ``Sandbox``, ``Limits``)
``keeper``     the small root process that holds a sandbox for a grader that dropped root
``execute``    nbgrader's Execute step replaced: student cells in the sandbox, tests in the grader
``runner``     the student's side, run inside the sandbox
``wire``       framing, requests and replies between the two sides
``codec``      how values cross the wire: by value, as plain data

This file imports nothing: it, ``runner``, ``wire`` and ``codec`` (the student's side, and nothing of the grader's)
are bound read-only into every sandbox, where the runner imports ``wire`` and ``codec`` from the package.
"""
