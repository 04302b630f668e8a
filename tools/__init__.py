"""Course tooling, run from the repository root and never installed: ``python -m tools.book`` builds the site and
keeps every notebook's standard cell in step with ``_config.yml``; ``python -m tools.calibrate_a4`` measures the
accuracy tiers of assignment a4. The packages students install are ``cnnbook`` (what notebooks import) and, for
graders, ``autograder``; this folder is part of neither.
"""
