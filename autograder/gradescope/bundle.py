"""``autograder gradescope ASSIGNMENT``: build the bundle on the instructor's machine, from a course checkout.

The scripts at the bundle's top level are this package's ``setup.sh`` and ``run_autograder``, with their
``@NAME@`` placeholders filled in; ``package/`` is a copy of the project's packages (this one included, so the
container runs the code that built the bundle).
"""

from __future__ import annotations

import io
import json
import pathlib
import re
import zipfile
from importlib import resources

from ..course import CONFIG_FILE, Course, CourseError
from ..notebooks import atomic_write
from .container import SETTINGS, STUDENT
from .messages import WHEN_SHOWN

VISIBILITIES = ("after_published", "after_due_date", "hidden", "visible")
PACKAGES = ("autograder", "cnnbook")
PACKAGE_FILES = ("pyproject.toml", "requirements.txt", "README.md")
SKIP = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")
LOAD = re.compile(r"""\bload\(\s*["']([A-Za-z_-]+)["']""")
PLACEHOLDER = re.compile(r"@([A-Z]+)@")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same sources give the same zip

# Appended to the bundled nbgrader_config.py: Gradescope's container keeps its own gradebook beside the file, never
# the course's database server (a shared c.CourseDirectory.db_url would be unreachable, or written by strangers).
OWN_GRADEBOOK = """
# Added by `autograder gradescope`: the bundle grades into its own gradebook.db beside this file.
c.CourseDirectory.pop("db_url", None)  # noqa: F821
"""


def project_root() -> pathlib.Path:
    """The checkout this package runs from: the bundle takes its packages and requirements from there."""
    root = pathlib.Path(__file__).resolve().parents[2]
    missing = [name for name in ("pyproject.toml", "requirements.txt", *PACKAGES) if not (root / name).exists()]
    if missing:
        raise CourseError(
            f"the bundle needs the project's {', '.join(missing)} beside the autograder package ({root}); run "
            "`autograder gradescope` from a checkout of the course repository (installed with `make venv`)"
        )
    return root


def datasets_needed(nb) -> list[str]:
    """The real datasets the notebook's code cells load with ``cnnbook.data.load("NAME")``, sorted."""
    from cnnbook.data import REAL

    names = set()
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            names.update(name.lower().replace("-", "_") for name in LOAD.findall(cell.get("source", "")))
    return sorted(names & set(REAL))


def script(name: str, **values: str) -> str:
    """This package's script ``name`` (``setup.sh``, ``run_autograder``) with its ``@NAME@`` placeholders filled
    from ``values``; a placeholder without a value raises ``KeyError``."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _files(folder: pathlib.Path):
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(p in SKIP or p.endswith(".egg-info") for p in parts) or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def _add(bundle: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    bundle.writestr(info, data)


def build(
    course: Course,
    assignment: str,
    *,
    out_dir: pathlib.Path | str = "dist",
    standin: bool = False,
    hidden_visibility: str = "after_published",
    trust_submissions: bool = False,
) -> tuple[pathlib.Path, dict]:
    """Write ``<out_dir>/<assignment>-gradescope.zip`` (``out_dir`` relative to the course unless absolute);
    returns its path and the bundle's settings (its ``gradescope.json``)."""
    import nbformat

    course.check_assignment(assignment)
    if hidden_visibility not in VISIBILITIES:
        choices = ", ".join(VISIBILITIES)
        raise CourseError(f"--hidden-visibility must be one of {choices}, not {hidden_visibility!r}")
    project = project_root()
    source_nb = nbformat.read(course.source_notebook(assignment), as_version=4)
    settings = {
        "assignment": assignment,
        "standin": bool(standin),
        "hidden_visibility": hidden_visibility,
        "trust_submissions": bool(trust_submissions),
        "datasets": [] if standin else datasets_needed(source_nb),
        "student": STUDENT,
    }
    if settings["datasets"]:
        fetch = f'"$PY" -m cnnbook.data fetch {" ".join(settings["datasets"])}'
    elif standin:
        fetch = "# no real dataset: built with --standin (stand-in datasets, for testing the course)"
    else:
        fetch = f"# no real dataset: {assignment} loads none"

    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as bundle:
        _add(bundle, "setup.sh", script("setup.sh", ASSIGNMENT=assignment, FETCH=fetch).encode(), executable=True)
        _add(bundle, "run_autograder", script("run_autograder").encode(), executable=True)
        _add(bundle, SETTINGS, (json.dumps(settings, indent=1, sort_keys=True) + "\n").encode())
        for name in PACKAGE_FILES:
            if (project / name).exists():
                _add(bundle, f"package/{name}", (project / name).read_bytes())
        for package in PACKAGES:
            for path in _files(project / package):
                _add(bundle, f"package/{path.relative_to(project).as_posix()}", path.read_bytes())
        config = (course.root / CONFIG_FILE).read_bytes() + OWN_GRADEBOOK.encode()
        _add(bundle, f"course/{CONFIG_FILE}", config)
        folder = course.source_notebook(assignment).parent
        for path in _files(folder):
            _add(bundle, f"course/source/{assignment}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    target = course.root / out_dir / f"{assignment}-gradescope.zip"  # an absolute out_dir replaces the root
    atomic_write(target, data.getvalue())
    return target, settings


def run(course: Course, args, out, err) -> int:
    """The ``autograder gradescope`` command."""
    path, settings = build(
        course,
        args.assignment,
        out_dir=args.out,
        standin=args.standin,
        hidden_visibility=args.hidden_visibility,
        trust_submissions=args.trust_submissions,
    )
    try:
        shown = path.relative_to(course.root)
    except ValueError:
        shown = path
    out.print(f"{shown}: Gradescope autograder for {args.assignment} ({path.stat().st_size / 1e6:.1f} MB)")
    datasets = ", ".join(settings["datasets"]) or "none"
    out.print(f"  setup.sh fetches the real datasets: {datasets}; installs Python packages and bubblewrap")
    when = WHEN_SHOWN.get(settings["hidden_visibility"], "always")
    out.print(f"  tests with hidden parts ({settings['hidden_visibility']}): students see them {when}")
    if settings["standin"]:
        err.print(
            "[bold yellow]STAND-IN DATA:[/] this bundle grades on stand-in datasets: for testing the course only, "
            "its scores are not valid grades."
        )
    if settings["trust_submissions"]:
        err.print(
            "[bold red]NO SANDBOX ALLOWED:[/] where bubblewrap does not work in Gradescope's container, this "
            "bundle grades without it: student code can then read the hidden tests and change its own score. "
            "Every such result says so."
        )
    out.print(
        "Upload it in Gradescope (Configure Autograder > Zip file upload, Ubuntu base image), then check the "
        "build log: it ends with the instructor's solution graded."
    )
    return 0
