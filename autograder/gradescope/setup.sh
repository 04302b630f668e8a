#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu with Python 3). It installs
# Python's venv, the grading sandbox (bubblewrap) and the course's packages, fetches the real datasets that
# @ASSIGNMENT@ loads, and grades the instructor's solution once: a broken image fails here, and the result is
# kept so that each submission skips that check.
set -euo pipefail
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export AUTOGRADER_ROOT="${AUTOGRADER_ROOT:-/autograder}"
export KERAS_HOME="${KERAS_HOME:-$AUTOGRADER_ROOT/keras}"
export DEBIAN_FRONTEND=noninteractive
VENV="$AUTOGRADER_ROOT/venv"
PY="$VENV/bin/python"

apt-get update -q
apt-get install -y -q --no-install-recommends \
  python3 python3-venv python3-pip bubblewrap util-linux ca-certificates
python3 -m venv "$VENV"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet -r "$SOURCE/package/requirements.txt"
"$PY" -m pip install --quiet --no-deps "$SOURCE/package"
"$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null

mkdir -p "$KERAS_HOME"
@FETCH@
"$PY" -m autograder.gradescope check
chmod 0755 "$SOURCE/run_autograder"
