"""``autograder collect``: LMS exports (Canvas, Moodle, Blackboard, folders, files) filed under submitted/.

Every export here is built in a temporary directory from the real student version of A2 (the notebook a student
downloads from Colab), filled in with the reference solutions and made distinct per student. No grading runs.
Tests of what the command prints and its exit status run it through ``autograder.cli.main``; the others call the
keyword API, ``collect_export``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import pathlib
import re
import shutil
import sys
import zipfile

import nbformat
import pytest

from autograder import cli
from autograder import collect as collecting
from autograder.collect import lms
from autograder.course import Course, CourseError
from tests.support.harness import ROOT, fill, read, reference_solutions, release_path, source_path

A = "a2_conv_arithmetic"
SIDE_FILES = {"weights.h5": b"\x89HDF\r\n\x1a\nweights", "data.npy": b"\x93NUMPY\x01\x00data", "notes.txt": b"hi"}


# ------------------------------------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True)
def _keep_path(monkeypatch):
    """cli.main puts the venv's bin first on PATH (for nbgrader's alembic); undo it after each test."""
    monkeypatch.setenv("PATH", os.environ.get("PATH", ""))


@pytest.fixture(scope="session")
def empty_gradebook(tmp_path_factory) -> pathlib.Path:
    """An empty nbgrader gradebook, made once: a new one runs the ``alembic`` command, which takes seconds."""
    from nbgrader.api import Gradebook

    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    bin_dir = os.path.dirname(sys.executable)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
        with Gradebook(f"sqlite:///{path}", "cnn-course"):
            pass
    return path


@pytest.fixture
def course(tmp_path) -> pathlib.Path:
    folder = tmp_path / "course"
    (folder / "source").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", folder / "nbgrader_config.py")
    shutil.copytree(ROOT / "source" / A, folder / "source" / A)
    return folder


_FULL = None


def notebook(tag: str, assignment: str = A) -> bytes:
    """A student's notebook: the student version with the reference solutions written in, marked with ``tag``
    (so that two students' notebooks differ)."""
    global _FULL
    if assignment != A:
        nb = read(release_path(assignment))
    else:
        if _FULL is None:
            _FULL = fill(read(release_path(A)), reference_solutions(read(source_path(A))))
        nb = nbformat.from_dict(json.loads(nbformat.writes(_FULL)))
    nb.cells[-1].source += f"\n\n<!-- {tag} -->"
    return nbformat.writes(nb).encode()


def make_zip(path: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def make_folder(path: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def run_cli(capsys, course: pathlib.Path, *args: str) -> tuple[int, str, str]:
    status = cli.main(["--course", str(course), "collect", *args])
    captured = capsys.readouterr()
    return status, captured.out, " ".join(captured.err.split())  # messages are wrapped to the console's width


def collect(course: pathlib.Path, export: pathlib.Path, **options) -> collecting.Report:
    """``collect_export`` of A, for the tests that are not about the command line."""
    return collecting.collect_export(Course.open(course), A, export, **options)


def submitted(course: pathlib.Path) -> dict[str, bytes]:
    """Every file under submitted/, by path relative to it."""
    folder = course / "submitted"
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def snapshot(folder: pathlib.Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def report(course: pathlib.Path) -> dict:
    return json.loads((course / ".autograder" / A / "collect.json").read_text())


def assert_no_side_files(root: pathlib.Path) -> None:
    """No file under ``root`` has a side file's name, suffix or bytes."""
    for path in root.rglob("*"):
        if path.is_file():
            assert path.suffix not in {".h5", ".npy", ".txt"} or path.name == "timestamp.txt", path
            assert path.read_bytes() not in SIDE_FILES.values(), f"{path} holds a side file of the export"


def nb_path(student: str) -> str:
    return f"{student}/{A}/{A}.ipynb"


# ---------------------------------------------------------------------------------------------------- Canvas
def canvas_files() -> dict[str, bytes]:
    """Canvas's submissions.zip: <sortable name>[_LATE]_<user id>_<attachment id>_<file name>; an upload under a
    name Canvas already holds gets -1 (and a later attachment id)."""
    return {
        f"lovelaceada_4711_982301_{A}.ipynb": notebook("ada first"),
        f"lovelaceada_4711_982377_{A}-1.ipynb": notebook("ada resubmitted"),
        f"turingalan_LATE_4712_982302_Copy of {A}.ipynb": notebook("alan"),
        f"hoppergrace_4713_982303_{A} (1).ipynb": notebook("grace"),
        "hoppergrace_4713_982303_weights.h5": SIDE_FILES["weights.h5"],
        "hoppergrace_4713_982303_data.npy": SIDE_FILES["data.npy"],
        "knuthdon_4714_982304_a1_backprop.ipynb": notebook("don", "a1_backprop"),
        f"brokenbob_4715_982305_{A}.ipynb": notebook("bob")[:500],
        "notes.ipynb": notebook("stray"),
        "../../evil.ipynb": notebook("evil"),
        "__MACOSX/._lovelaceada_4711_982301_a2_conv_arithmetic.ipynb": b"\x00\x05\x16\x07",
    }


def test_canvas_zip(course, tmp_path, capsys):
    files = canvas_files()
    export = make_zip(tmp_path / "canvas.zip", files)
    status, out, err = run_cli(capsys, course, A, str(export))
    assert status == 0, err

    assert submitted(course) == {
        nb_path("brokenbob"): files[f"brokenbob_4715_982305_{A}.ipynb"],
        nb_path("hoppergrace"): files[f"hoppergrace_4713_982303_{A} (1).ipynb"],
        nb_path("knuthdon"): files["knuthdon_4714_982304_a1_backprop.ipynb"],
        nb_path("lovelaceada"): files[f"lovelaceada_4711_982377_{A}-1.ipynb"],
        nb_path("turingalan"): files[f"turingalan_LATE_4712_982302_Copy of {A}.ipynb"],
    }
    assert_no_side_files(course)
    assert not any(p.name == "evil.ipynb" for p in tmp_path.parent.rglob("evil.ipynb"))

    saved = report(course)
    assert saved["pattern"] == "canvas"
    students = saved["students"]
    assert {s: row["status"] for s, row in students.items()} == dict.fromkeys(
        ["brokenbob", "hoppergrace", "knuthdon", "lovelaceada", "turingalan"], "new"
    )
    assert [s for s, row in students.items() if row["late"]] == ["turingalan"]
    assert students["turingalan"]["timestamp"] is None
    assert not students["brokenbob"]["readable"] and "not valid JSON" in students["brokenbob"]["unreadable"]
    assert not students["knuthdon"]["looks_like_assignment"]
    assert any(f"does not look like {A}" in note for note in students["knuthdon"]["notes"])
    assert students["lovelaceada"]["looks_like_assignment"]
    assert saved["several"] == [
        {
            "student": "lovelaceada",
            "taken": f"lovelaceada_4711_982377_{A}-1.ipynb",
            "why": "the latest upload by the LMS's file number",
            "ignored": [f"lovelaceada_4711_982301_{A}.ipynb"],
        }
    ]
    assert saved["not_notebooks"] == ["hoppergrace_4713_982303_data.npy", "hoppergrace_4713_982303_weights.h5"]
    assert saved["unmatched"] == ["notes.ipynb"]
    assert [r["file"] for r in saved["refused"]] == ["../../evil.ipynb"]
    assert "unsafe path" in saved["refused"][0]["reason"]

    assert "read as a canvas export" in out
    assert "does not look like a2_conv_arithmetic" in out and "not valid JSON" in out
    summary = "5 student(s) collected: 5 new, 0 updated, 0 unchanged; 0 without a notebook, 0 unreadable; 1 late"
    assert f"{summary}; 5 file(s) skipped" in out
    assert out.rstrip().endswith(f"Next: autograder grade {A}")
    assert not (course / "submitted" / "lovelaceada" / A / "timestamp.txt").exists()


def test_second_collect_changes_nothing(course, tmp_path, capsys):
    export = make_zip(tmp_path / "canvas.zip", canvas_files())
    assert run_cli(capsys, course, A, str(export))[0] == 0
    before = snapshot(course / "submitted")
    status, out, _ = run_cli(capsys, course, A, str(export))
    assert status == 0
    assert snapshot(course / "submitted") == before
    assert {row["status"] for row in report(course)["students"].values()} == {"unchanged"}
    assert not (course / ".autograder" / A / "replaced").exists()
    assert "5 student(s) collected: 0 new, 0 updated, 5 unchanged" in out


def test_newer_notebook_replaces_and_keeps_the_old_one(course, tmp_path, capsys):
    first = make_zip(tmp_path / "first.zip", {f"lovelaceada_4711_1_{A}.ipynb": notebook("ada v1")})
    second = make_zip(tmp_path / "second.zip", {f"lovelaceada_4711_2_{A}.ipynb": notebook("ada v2")})
    assert run_cli(capsys, course, A, str(first))[0] == 0
    status, out, _ = run_cli(capsys, course, A, str(second))
    assert status == 0
    assert submitted(course) == {nb_path("lovelaceada"): notebook("ada v2")}
    kept = list((course / ".autograder" / A / "replaced").iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("lovelaceada-") and kept[0].suffix == ".ipynb"
    assert kept[0].read_bytes() == notebook("ada v1")
    assert report(course)["students"]["lovelaceada"]["status"] == "updated"
    assert "0 new, 1 updated, 0 unchanged" in out


def test_dry_run_writes_nothing(course, tmp_path, capsys):
    export = make_zip(tmp_path / "canvas.zip", canvas_files())
    before = snapshot(course)
    status, out, _ = run_cli(capsys, course, A, str(export), "--dry-run", "--due", "2026-10-01 23:59 UTC")
    assert status == 0
    assert snapshot(course) == before
    assert not (course / "gradebook.db").exists() and not (course / ".autograder").exists()
    assert "would be collected (dry run: nothing written)" in out
    assert "5 student(s) would be collected: 5 new" in out
    assert "not stored: dry run" in out


# ---------------------------------------------------------------------------------------------------- Moodle
def test_moodle_folder(course, tmp_path, capsys):
    files = {
        f"Ada Lovelace_123456_assignsubmission_file_/{A}.ipynb": notebook("ada"),
        "Ada Lovelace_123456_assignsubmission_file_/weights.h5": SIDE_FILES["weights.h5"],
        f"José Núñez_123457_assignsubmission_file_/Copy of {A}.ipynb": notebook("jose"),
        "José Núñez_123457_assignsubmission_onlinetext_/onlinetext.html": b"<p>see file</p>",
        f"Grace O'Hara-Smith_123458_assignsubmission_file_/my work/{A} (2).ipynb": notebook("grace 2"),
        f"Grace O'Hara-Smith_123458_assignsubmission_file_/my work/{A}.ipynb": notebook("grace"),
        ".DS_Store": b"\x00\x00\x00\x01Bud1",
    }
    export = make_folder(tmp_path / "moodle export", files)
    status, out, err = run_cli(capsys, course, A, str(export))
    assert status == 0, err
    assert submitted(course) == {
        nb_path("ada_lovelace"): files[f"Ada Lovelace_123456_assignsubmission_file_/{A}.ipynb"],
        nb_path("grace_o_hara_smith"): files[
            f"Grace O'Hara-Smith_123458_assignsubmission_file_/my work/{A} (2).ipynb"
        ],
        nb_path("jose_nunez"): files[f"José Núñez_123457_assignsubmission_file_/Copy of {A}.ipynb"],
    }
    assert_no_side_files(course)
    saved = report(course)
    assert saved["pattern"] == "moodle"
    assert saved["students"]["jose_nunez"]["name_in_export"] == "José Núñez"
    assert sorted(saved["not_notebooks"]) == [
        "Ada Lovelace_123456_assignsubmission_file_/weights.h5",
        "José Núñez_123457_assignsubmission_onlinetext_/onlinetext.html",
    ]
    assert saved["several"][0]["student"] == "grace_o_hara_smith"
    assert "read as a moodle export" in out


def test_moodle_namesakes_are_kept_apart(course, tmp_path):
    export = make_zip(
        tmp_path / "moodle.zip",
        {
            f"Ada Lovelace_501_assignsubmission_file_/{A}.ipynb": notebook("first ada"),
            f"Ada Lovelace_502_assignsubmission_file_/{A}.ipynb": notebook("second ada"),
        },
    )
    done = collect(course, export, lms="moodle")
    assert submitted(course) == {
        nb_path("ada_lovelace-501"): notebook("first ada"),
        nb_path("ada_lovelace-502"): notebook("second ada"),
    }
    assert "2 people give the id 'ada_lovelace'" in done.students["ada_lovelace-501"]["notes"][0]


# ------------------------------------------------------------------------------------------------ Blackboard
def blackboard_files() -> dict[str, bytes]:
    name = "A2 Conv Arithmetic"
    return {
        f"{name}_alovelace_attempt_2026-10-01-20-00-00_{A}.ipynb": notebook("ada 20:00"),
        f"{name}_alovelace_attempt_2026-10-01-20-00-00.txt": b"Name: Ada Lovelace (alovelace)\n",
        f"{name}_alovelace_attempt_2026-10-01-22-30-00_{A}.ipynb": notebook("ada 22:30"),
        f"{name}_alovelace_attempt_2026-10-01-22-30-00.txt": b"Name: Ada Lovelace (alovelace)\n",
        f"{name}_aturing_attempt_2026-10-02-01-15-00_Copy of {A}.ipynb": notebook("alan"),
        f"{name}_aturing_attempt_2026-10-02-01-15-00.txt": b"Name: Alan Turing (aturing)\n",
        f"{name}_ghopper_attempt_2026-10-01-09-00-00.ipynb": notebook("grace"),
        f"{name}_ghopper_attempt_2026-10-01-23-00-00_a1_backprop.ipynb": notebook("grace a1", "a1_backprop"),
    }


def test_blackboard_zip_timestamps_due_and_late(course, tmp_path, capsys, empty_gradebook):
    shutil.copy(empty_gradebook, course / "gradebook.db")
    files = blackboard_files()
    export = make_zip(tmp_path / "gradebook_A2.zip", files)
    status, out, err = run_cli(capsys, course, A, str(export), "--due", "2026-10-01 23:59 UTC")
    assert status == 0, err
    name = "A2 Conv Arithmetic"
    expected = {
        "alovelace": (f"{name}_alovelace_attempt_2026-10-01-22-30-00_{A}.ipynb", "2026-10-01 22:30:00"),
        "aturing": (f"{name}_aturing_attempt_2026-10-02-01-15-00_Copy of {A}.ipynb", "2026-10-02 01:15:00"),
        "ghopper": (f"{name}_ghopper_attempt_2026-10-01-09-00-00.ipynb", "2026-10-01 09:00:00"),
    }
    want = {}
    for student, (file, stamp) in expected.items():
        want[nb_path(student)] = files[file]
        want[f"{student}/{A}/timestamp.txt"] = f"{stamp}.000000 UTC".encode()
    assert submitted(course) == want
    assert_no_side_files(course)

    from nbgrader.utils import parse_utc

    stamp = (course / "submitted" / "aturing" / A / "timestamp.txt").read_text().strip()
    assert parse_utc(stamp) == datetime.datetime(2026, 10, 2, 1, 15)

    saved = report(course)
    assert saved["pattern"] == "blackboard"
    assert saved["due"] == "2026-10-01 23:59:00.000000 UTC"
    rows = saved["students"]
    assert {s: (r["late"], r["late_by"]) for s, r in rows.items()} == {
        "alovelace": (False, ""),
        "aturing": (True, "1 h 16 min"),
        "ghopper": (False, ""),
    }
    # Grace's later file is A1's notebook: the notebook of this assignment is taken, and the reason is said.
    several = {item["student"]: item for item in saved["several"]}
    assert several["ghopper"]["why"] == f"the one that looks like {A}"
    assert several["alovelace"]["why"] == "the latest by the LMS's submission time"
    assert sorted(saved["not_notebooks"]) == sorted(p for p in files if p.endswith(".txt"))

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "cnn-course") as gradebook:
        assert gradebook.find_assignment(A).duedate == datetime.datetime(2026, 10, 1, 23, 59)

    # Without --due, the gradebook's due date is used.
    status, out, _ = run_cli(capsys, course, A, str(export))
    assert status == 0
    assert "due 2026-10-01 23:59:00.000000 UTC (from the gradebook)" in out
    assert [s for s, r in report(course)["students"].items() if r["late"]] == ["aturing"]
    assert {r["status"] for r in report(course)["students"].values()} == {"unchanged"}


def test_an_older_export_does_not_replace_a_newer_submission(course, tmp_path):
    name = "A2 Conv Arithmetic"
    newer = make_zip(
        tmp_path / "new.zip", {f"{name}_alovelace_attempt_2026-10-02-10-00-00_{A}.ipynb": notebook("new")}
    )
    older = make_zip(
        tmp_path / "old.zip", {f"{name}_alovelace_attempt_2026-10-01-10-00-00_{A}.ipynb": notebook("old")}
    )
    collect(course, newer)
    before = snapshot(course / "submitted")
    done = collect(course, older)
    assert snapshot(course / "submitted") == before
    assert report(course)["students"]["alovelace"]["status"] == "kept newer"
    assert any("submitted/ holds a later one" in note for note in done.students["alovelace"]["notes"])


def test_replaced_timestamp_is_kept_too(course, tmp_path):
    name = "A2 Conv Arithmetic"
    first = make_zip(
        tmp_path / "1.zip", {f"{name}_alovelace_attempt_2026-10-01-10-00-00_{A}.ipynb": notebook("a")}
    )
    second = make_zip(
        tmp_path / "2.zip", {f"{name}_alovelace_attempt_2026-10-01-11-00-00_{A}.ipynb": notebook("b")}
    )
    collect(course, first)
    collect(course, second)
    folder = course / "submitted" / "alovelace" / A
    assert (folder / "timestamp.txt").read_text() == "2026-10-01 11:00:00.000000 UTC"
    replaced = sorted(p.name for p in (course / ".autograder" / A / "replaced").iterdir())
    assert len(replaced) == 2 and replaced[0].endswith(".ipynb") and replaced[1].endswith(".timestamp.txt")
    assert (course / ".autograder" / A / "replaced" / replaced[1]).read_text().startswith("2026-10-01 10:00:00")


# ------------------------------------------------------------------------------------------ folders and files
def test_folders_zip_with_a_top_folder(course, tmp_path, capsys):
    files = {
        f"class/alice/{A}.ipynb": notebook("alice"),
        f"class/bob/hw2/Copy of {A}.ipynb": notebook("bob"),
        "class/bob/hw2/data.npy": SIDE_FILES["data.npy"],
        f"class/bob/.ipynb_checkpoints/{A}-checkpoint.ipynb": notebook("bob checkpoint"),
    }
    export = make_zip(tmp_path / "class.zip", files)
    status, out, err = run_cli(capsys, course, A, str(export))
    assert status == 0, err
    assert submitted(course) == {
        nb_path("alice"): files[f"class/alice/{A}.ipynb"],
        nb_path("bob"): files[f"class/bob/hw2/Copy of {A}.ipynb"],
    }
    assert_no_side_files(course)
    assert report(course)["pattern"] == "folders" and report(course)["top_folder_left_out"] == "class"
    assert "read as a folders export inside its top folder class/" in out


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip of the folder"])
def test_files_layout(course, tmp_path, zipped):
    files = {"alice.ipynb": notebook("alice"), "Bob Smith.ipynb": notebook("bob"), "weights.h5": b"x"}
    SIDE_FILES_EXTRA = {"weights.h5"}
    if zipped:
        export = make_zip(tmp_path / "hw2.zip", {f"hw2/{k}": v for k, v in files.items()})
    else:
        export = make_folder(tmp_path / "hw2", files)
    done = collect(course, export)
    assert submitted(course) == {
        nb_path("alice"): files["alice.ipynb"],
        nb_path("bob_smith"): files["Bob Smith.ipynb"],
    }
    assert done.pattern == "files"
    assert done.top_folder_left_out == ("hw2" if zipped else "")
    assert [p.rsplit("/", 1)[-1] for p in done.not_notebooks] == sorted(SIDE_FILES_EXTRA)


def test_unsafe_student_ids_are_refused(course, tmp_path):
    export = make_folder(
        tmp_path / "export",
        {f"alice/{A}.ipynb": notebook("alice"), f"al!ce/{A}.ipynb": notebook("x"), f"{'x' * 120}/a.ipynb": b"{}"},
    )
    done = collect(course, export)
    assert submitted(course) == {nb_path("alice"): notebook("alice")}
    reasons = {r["file"]: r["reason"] for r in done.refused}
    assert "not a safe folder name" in reasons[f"al!ce/{A}.ipynb"]
    assert "longer than 100 characters" in reasons[f"{'x' * 120}/a.ipynb"]


def test_symbolic_links_are_not_followed(course, tmp_path):
    outside = tmp_path / "outside.ipynb"
    outside.write_bytes(notebook("outside"))
    export = make_folder(tmp_path / "export", {f"alice/{A}.ipynb": notebook("alice")})
    (export / "mallory").mkdir()
    (export / "mallory" / f"{A}.ipynb").symlink_to(outside)
    done = collect(course, export)
    assert submitted(course) == {nb_path("alice"): notebook("alice")}
    assert done.refused == [{"file": f"mallory/{A}.ipynb", "reason": "a symbolic link: not followed"}]


def test_encrypted_members_are_refused(course, tmp_path):
    path = make_zip(tmp_path / "locked.zip", {f"alice/{A}.ipynb": notebook("alice"), f"bob/{A}.ipynb": b"x"})
    data = bytearray(path.read_bytes())  # mark bob's entry encrypted in the central directory (bit 0 of its flags)
    entry = data.index(b"PK\x01\x02")
    while data[entry + 46 : entry + 46 + len(f"bob/{A}.ipynb")] != f"bob/{A}.ipynb".encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 8] |= 0x1
    path.write_bytes(bytes(data))
    done = collect(course, path)
    assert submitted(course) == {nb_path("alice"): notebook("alice")}
    assert done.refused == [{"file": f"bob/{A}.ipynb", "reason": "encrypted in the zip: not read"}]


# ------------------------------------------------------------------------------------------ custom patterns
def test_custom_pattern(course, tmp_path, empty_gradebook):
    shutil.copy(empty_gradebook, course / "gradebook.db")
    files = {
        "hw2/s1001/submission-20261001T120000.ipynb": notebook("s1001"),
        "hw2/s1002/submission-20261002T080000.ipynb": notebook("s1002"),
        "hw2/s1002/data.npy": SIDE_FILES["data.npy"],
        "hw2/readme.ipynb": notebook("readme"),
    }
    export = make_zip(tmp_path / "custom.zip", files)
    pattern = r"hw2/(?P<student_id>s\d+)/submission-(?P<timestamp>\d{8}T\d{6})\.ipynb"
    done = collect(course, export, pattern=pattern, due="2026-10-01")
    assert submitted(course) == {
        nb_path("s1001"): files["hw2/s1001/submission-20261001T120000.ipynb"],
        "s1001/a2_conv_arithmetic/timestamp.txt": b"2026-10-01 12:00:00.000000 UTC",
        nb_path("s1002"): files["hw2/s1002/submission-20261002T080000.ipynb"],
        "s1002/a2_conv_arithmetic/timestamp.txt": b"2026-10-02 08:00:00.000000 UTC",
    }
    saved = report(course)
    assert saved == dataclasses.asdict(done)
    assert saved["pattern"] == "--pattern" and saved["regex"] == pattern
    assert saved["due"] == "2026-10-01 23:59:59.000000 UTC"
    assert [s for s, r in saved["students"].items() if r["late"]] == ["s1002"]
    assert saved["unmatched"] == ["hw2/readme.ipynb"]


def test_course_pattern_from_config(course, tmp_path, capsys):
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(
            '\nc.Autograder.lms_patterns = {"ourlms": r"(?P<student_id>u\\d+)__(?P<file_id>.+)\\.ipynb"}\n'
        )
    export = make_zip(
        tmp_path / "ours.zip", {f"u17__{A}.ipynb": notebook("u17"), f"u18__{A}.ipynb": notebook("u18")}
    )
    status, out, _ = run_cli(capsys, course, A, str(export))
    assert status == 0
    assert set(submitted(course)) == {nb_path("u17"), nb_path("u18")}
    assert "read as a ourlms export" in out


def test_auto_prefers_an_lms_pattern_to_the_generic_layouts(course, tmp_path):
    """``files`` matches every flat file, also those Canvas named; Canvas wins when it fits most of them."""
    paths = ["adalovelace_1_2_a.ipynb", "adalovelace_1_3_b.ipynb", "turingalan_3_4_a.ipynb", "stray.ipynb"]
    tried = [collecting.match(p, paths) for p in collecting.patterns(Course.open(course))]
    assert collecting.choose_pattern(tried, len(paths)).pattern.name == "canvas"
    assert collecting.choose_pattern(tried[-1:], len(paths)).pattern.name == "files"


# ------------------------------------------------------------------------------------------------ resubmissions
BB = "A2 Conv Arithmetic"  # Blackboard names each file after the assignment's title
CANVAS_ADA = "lovelaceada_4711_"  # <sortable name>_<user id>_, then <attachment id>_<file name>
MOODLE_ADA = "Ada Lovelace_123456_assignsubmission_file/"
BB_ADA = f"{BB}_alovelace_attempt_2026-10-01-"  # then the attempt's time, hh-mm-ss, and _<file name>
BY_UPLOAD, BY_TIME = "the latest upload by the LMS's file number", "the latest by the LMS's submission time"
BY_NAME = "the latest copy by the number in its name: "


@pytest.mark.parametrize(
    ("older", "newer", "why"),
    [
        # Canvas: the attachment id grows with every upload; Canvas adds -1 to a name it already holds ...
        (f"{CANVAS_ADA}982301_{A} (2).ipynb", f"{CANVAS_ADA}982377_{A} (2)-1.ipynb", BY_UPLOAD),
        (f"{CANVAS_ADA}982301_{A} (1).ipynb", f"{CANVAS_ADA}982377_{A} (1)-1.ipynb", BY_UPLOAD),
        # ... and the LMS's order wins over the names': the third download was uploaded first.
        (f"{CANVAS_ADA}982301_{A} (3).ipynb", f"{CANVAS_ADA}982377_{A} (2)-1.ipynb", BY_UPLOAD),
        # Blackboard: every attempt has its time.
        (f"{BB_ADA}20-00-00_{A} (3).ipynb", f"{BB_ADA}22-00-00_{A}.ipynb", BY_TIME),
        # Moodle gives neither: its file picker renames a second a2 (1).ipynb to a2 (1) (1).ipynb.
        (f"{MOODLE_ADA}{A} (1).ipynb", f"{MOODLE_ADA}{A} (1) (1).ipynb", BY_NAME + "'(1) (1)' after '(1)'"),
        (f"{MOODLE_ADA}{A} (1) (1).ipynb", f"{MOODLE_ADA}{A} (2).ipynb", BY_NAME + "'(2)' after '(1) (1)'"),
        # Browser downloads gathered in folders: Chrome's " (n)", Firefox's "(n)", then re-uploads' -1.
        (f"alovelace/{A} (1).ipynb", f"alovelace/{A} (1)-1.ipynb", BY_NAME + "'(1)-1' after '(1)'"),
        (f"alovelace/{A} (2).ipynb", f"alovelace/{A} (2)-1.ipynb", BY_NAME + "'(2)-1' after '(2)'"),
        (f"alovelace/{A}.ipynb", f"alovelace/{A}(1).ipynb", BY_NAME + "'(1)' after the name without one"),
    ],
    ids=[
        "canvas-(2)-then-(2)-1",
        "canvas-(1)-then-(1)-1",
        "canvas-ids-over-names",
        "blackboard-times",
        "moodle-(1)-(1)",
        "moodle-(2)-over-(1)-(1)",
        "browser-(1)-1",
        "browser-(2)-1",
        "firefox-(1)",
    ],
)
def test_the_latest_resubmission_is_taken(course, tmp_path, older, newer, why):
    for first, second in ((older, newer), (newer, older)):  # whatever the order in the zip
        contents = {first: notebook(first), second: notebook(second)}
        if newer.startswith("alovelace/"):  # one folder alone reads as a zipped folder of <student>.ipynb files
            contents[f"ghopper/{A}.ipynb"] = notebook("grace")
        done = collect(course, make_zip(tmp_path / f"{first[-12:]}.zip", contents))
        [several] = done.several
        assert submitted(course)[nb_path(several["student"])] == notebook(newer)
        assert several == {"student": several["student"], "taken": newer, "why": why, "ignored": [older]}


# ------------------------------------------------------------------------------ every student of the export
def test_notebooks_named_in_upper_case_or_saved_as_text_are_collected(course, tmp_path):
    files = {
        f"turingalan_4712_982302_{A.upper()}.IPYNB": notebook("alan"),
        f"hoppergrace_4713_982303_{A}.ipynb.txt": notebook("grace"),
        f"knuthdon_4714_982304_{A}.Ipynb": notebook("don"),
    }
    done = collect(course, make_zip(tmp_path / "canvas.zip", files))
    assert done.pattern == "canvas" and not done.not_notebooks and not done.unmatched
    assert submitted(course) == {
        nb_path("turingalan"): files[f"turingalan_4712_982302_{A.upper()}.IPYNB"],
        nb_path("hoppergrace"): files[f"hoppergrace_4713_982303_{A}.ipynb.txt"],
        nb_path("knuthdon"): files[f"knuthdon_4714_982304_{A}.Ipynb"],
    }
    assert done.students["hoppergrace"]["looks_like_assignment"]
    assert f"named '{A}.ipynb.txt'" not in " ".join(done.students["hoppergrace"]["notes"])  # the full name is
    assert any(".ipynb.txt': read as a notebook" in n for n in done.students["hoppergrace"]["notes"])
    # The generic layouts read them too.
    other = tmp_path / "course2"
    shutil.copytree(course, other)
    done = collect(other, make_folder(tmp_path / "files", {"alice.IPYNB": notebook("a"), "bob.ipynb.txt": b"{}"}))
    assert done.pattern == "files" and set(done.students) == {"alice", "bob"}


def test_every_student_of_the_export_has_a_row(course, tmp_path, capsys, monkeypatch, empty_gradebook):
    shutil.copy(empty_gradebook, course / "gradebook.db")
    big = notebook("big bob") + b" " * 4000  # JSON allows the trailing spaces
    monkeypatch.setattr(lms, "MAX_NOTEBOOK_BYTES", len(big) - 1)
    files = {
        f"adalovelace_4711_982301_{A}.ipynb": notebook("ada"),
        f"knuthdon_4714_982304_{A}.pdf": b"%PDF-1.4",  # printed the notebook instead of downloading it
        "turingalan_LATE_4712_text.html": b"<p>my answers are in Colab</p>",  # a late text entry
        f"smithbob_4715_982305_{A}.ipynb": big,
        f"smithbob_4715_982306_{A}.zip": b"PK\x05\x06" + bytes(18),
    }
    export = make_zip(tmp_path / "canvas.zip", files)
    status, out, err = run_cli(capsys, course, A, str(export))
    assert status == 0, err
    rows = report(course)["students"]
    assert {s: r["status"] for s, r in rows.items()} == {
        "adalovelace": "new",
        "knuthdon": "missing",
        "smithbob": "unreadable",
        "turingalan": "missing",
    }
    assert f"only: knuthdon_4714_982304_{A}.pdf" in rows["knuthdon"]["reason"]
    assert "Download .ipynb" in rows["knuthdon"]["reason"]
    assert (rows["turingalan"]["late"], rows["turingalan"]["late_by"]) == (True, "marked late by the LMS")
    assert "over the limit" in rows["smithbob"]["reason"]
    assert set(submitted(course)) == {nb_path("adalovelace")}
    assert "1 student(s) collected: 1 new, 0 updated, 0 unchanged; 2 without a notebook, 1 unreadable" in out
    assert re.search(r"knuthdon\s+.\s+knuthdon_4714_\S*\s+.\s+missing ", out)
    assert "knuthdon: no notebook (.ipynb) in the export, only: knuthdon_4714_982304" in out
    assert re.search(r"smithbob\s+.\s+smithbob_4715_\S*\s+.\s+unreadable ", out)
    assert rows["smithbob"]["file"] == f"smithbob_4715_982305_{A}.ipynb"  # the notebook, not the zip beside it

    # Each of them has a row in the grade files, with the reason.
    from autograder import export as exporting

    done = exporting.export_grades(Course.open(course), [A])
    assert done.counts[A] | {} == {
        "students": 4, "graded": 0, "failed": 0, "needs manual grading": 0, "not graded": 1, "missing": 3
    }  # fmt: skip
    with open(course / "exports" / f"{A}.csv", newline="") as f:
        table = {row[0]: row for row in csv.reader(f)}
    assert table["student"][-5:] == ["total", "max", "late", "late_seconds", "notes"]
    assert table["adalovelace"][1] == "not graded" and f"autograder grade {A}" in table["adalovelace"][-1]
    assert table["knuthdon"][1] == "missing" and "knuthdon_4714_982304" in table["knuthdon"][-1]
    assert table["smithbob"][1] == "unreadable" and "over the limit" in table["smithbob"][-1]
    assert table["turingalan"][1] == "missing" and table["turingalan"][-3:-1] == ["yes", ""]
    assert "late: marked late by the LMS" in table["turingalan"][-1]


@pytest.mark.parametrize("layout", ["moodle", "blackboard"])
def test_students_without_a_notebook_in_moodle_and_blackboard_exports(course, tmp_path, layout):
    if layout == "moodle":
        files = {
            f"Ada Lovelace_123456_assignsubmission_file/{A}.ipynb": notebook("ada"),
            "José Núñez_123457_assignsubmission_onlinetext/onlinetext.html": b"<p>see my Colab link</p>",
        }
        absent, late = "jose_nunez", (False, "")
    else:
        files = {
            f"{BB}_alovelace_attempt_2026-10-01-20-00-00_{A}.ipynb": notebook("ada"),
            f"{BB}_alovelace_attempt_2026-10-01-20-00-00.txt": b"Name: Ada Lovelace (alovelace)\n",
            f"{BB}_aturing_attempt_2026-10-02-01-15-00.txt": b"Name: Alan Turing (aturing)\n",  # text only
        }
        absent, late = "aturing", (True, "1 h 16 min")
    done = collect(course, make_zip(tmp_path / "export.zip", files), due="2026-10-01 23:59 UTC", dry_run=True)
    assert done.students[absent]["status"] == "missing"
    assert (done.students[absent]["late"], done.students[absent]["late_by"]) == late
    assert sum(row["status"] == "missing" for row in done.students.values()) == 1


def test_the_lms_late_mark_is_kept_for_the_grade_files(course, tmp_path, empty_gradebook):
    """Canvas marks a late submission in its file name, without a time; Blackboard gives the time. Both reach the
    intake records that grading, feedback and export read, and the export says so before anything is graded."""
    from autograder import export as exporting
    from autograder import intake

    shutil.copy(empty_gradebook, course / "gradebook.db")
    canvas = {
        f"turingalan_LATE_4712_982302_{A}.ipynb": notebook("alan"),
        f"ada_4711_982301_{A}.ipynb": notebook("a"),
    }
    collect(course, make_zip(tmp_path / "canvas.zip", canvas))
    collect(course, make_zip(tmp_path / "bb.zip", {k: v for k, v in blackboard_files().items() if "aturing" in k}),
            due="2026-10-01 23:59 UTC")  # fmt: skip
    kept = intake.intakes(Course.open(course), A)
    assert (kept["turingalan"].lms_late, kept["turingalan"].late_seconds) == (True, None)
    assert (kept["aturing"].lms_late, kept["aturing"].late_seconds) == (False, 76 * 60)
    assert not kept["ada"].lms_late and kept["ada"].status == "collected"
    data = exporting.assignment_data(Course.open(course), A)
    late = {s["student"]: (s["late"], s["late_seconds"], s["late_reason"]) for s in data["students"]}
    assert late == {
        "ada": (False, None, ""),
        "aturing": (True, 76 * 60, "1 h 16 min after the due date"),
        "turingalan": (True, None, "marked late by the LMS"),
    }


def test_an_export_of_another_assignment_is_refused(course, tmp_path, capsys):
    shutil.copytree(ROOT / "source" / "a1_backprop", course / "source" / "a1_backprop")
    files = {
        "alice/a1_backprop.ipynb": notebook("alice", "a1_backprop"),
        "bob/a1_backprop.ipynb": notebook("bob", "a1_backprop"),
        f"carol/{A}.ipynb": notebook("carol"),
    }
    export = make_zip(tmp_path / "a1.zip", files)
    for extra in ([], ["--dry-run"]):
        status, _, err = run_cli(capsys, course, A, str(export), *extra)
        assert status == 2
        assert f"2 of the 3 students' notebooks in {export} do not look like {A}" in err
        assert "they look like a1_backprop" in err and "Nothing was collected" in err
        assert f"autograder collect a1_backprop {export}" in err and "--force" in err
        assert not submitted(course) and not (course / ".autograder").exists()
    status, out, err = run_cli(capsys, course, A, str(export), "--force")
    assert status == 0, err
    assert set(submitted(course)) == {nb_path("alice"), nb_path("bob"), nb_path("carol")}
    assert out.count(f"does not look like {A}") == 2


# --------------------------------------------------------------------------------------------------- limits
def test_oversized_notebook_is_refused(course, tmp_path, monkeypatch):
    monkeypatch.setattr(lms, "MAX_NOTEBOOK_BYTES", 1000)
    export = make_zip(tmp_path / "big.zip", {f"alice/{A}.ipynb": notebook("alice"), "bob/tiny.ipynb": b"{}"})
    done = collect(course, export)
    assert set(submitted(course)) == {nb_path("bob")}
    assert "over the limit" in done.refused[0]["reason"]


# ---------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda t: t / "missing.zip", [], "does not exist"),
        (lambda t: make_folder(t / "x", {"a.txt": b"x"}) / "a.txt", [], "neither a zip file nor a folder"),
        (lambda t: make_folder(t / "x", {"bad.zip": b"PK\x03\x04 not really"}) / "bad.zip", [], "not a valid zip"),
        (lambda t: make_zip(t / "e.zip", {"a/report.pdf": b"%PDF"}), [], "holds no notebook (.ipynb)"),
        (
            lambda t: make_zip(t / "f.zip", {f"alice/{A}.ipynb": b"{}"}),
            ["--lms", "canvas"],
            "matched a file-name pattern (tried: canvas)",
        ),
        (lambda t: make_zip(t / "g.zip", {"a.ipynb": b"{}"}), ["--lms", "webct"], "unknown --lms 'webct'"),
        (
            lambda t: make_zip(t / "h.zip", {"a.ipynb": b"{}"}),
            ["--lms", "canvas", "--pattern", "(?P<student_id>.+)"],
            "either --lms or --pattern",
        ),
        (lambda t: make_zip(t / "i.zip", {"a.ipynb": b"{}"}), ["--pattern", "(?P<student>.+)"], "no named group"),
        (lambda t: make_zip(t / "j.zip", {"a.ipynb": b"{}"}), ["--pattern", "(?P<student_id>"], "not a valid"),
        (lambda t: make_zip(t / "k.zip", {"a.ipynb": b"{}"}), ["--due", "next tuesday-ish"], "--due"),
        (lambda t: make_zip(t / "l.zip", {"a.ipynb": b"{}"}), ["--due", "2026-10-01 23:59 CEST"], "time zone"),
        (lambda t: make_zip(t / "m.zip", {"a!.ipynb": b"{}"}), [], "no notebook could be collected"),
    ],
    ids=[
        "missing",
        "not-zip-or-folder",
        "corrupt-zip",
        "no-notebook",
        "no-match",
        "unknown-lms",
        "lms-and-pattern",
        "pattern-without-student-id",
        "pattern-invalid",
        "due-unreadable",
        "due-unknown-zone",
        "every-id-refused",
    ],
)
def test_bad_input_is_a_clear_error(course, tmp_path, capsys, make, args, message):
    status, out, err = run_cli(capsys, course, A, str(make(tmp_path)), *args)
    assert status == 2
    assert message in err
    assert not submitted(course)


def test_truncated_zip_is_a_clear_error(course, tmp_path, capsys):
    whole = make_zip(tmp_path / "whole.zip", canvas_files()).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    status, _, err = run_cli(capsys, course, A, str(tmp_path / "cut.zip"))
    assert status == 2 and "download" in err and "zip" in err
    assert "no notebook matched" not in err


def test_unknown_assignment(course, tmp_path, capsys):
    status, _, err = run_cli(capsys, course, "a9_nothing", str(make_zip(tmp_path / "a.zip", {"a.ipynb": b"{}"})))
    assert status == 2 and "no assignment 'a9_nothing'" in err


# ------------------------------------------------------------------------------------------------ units
@pytest.mark.parametrize(
    ("raw", "full_name", "expected"),
    [
        ("lovelaceada", False, "lovelaceada"),
        ("  Ada.Lovelace@Uni.EDU ", False, "ada.lovelace@uni.edu"),
        ("Bob  Smith", False, "bob_smith"),
        ("Ada Lovelace", True, "ada_lovelace"),
        ("José  Núñez-García", True, "jose_nunez_garcia"),
        ("Grace O'Hara", True, "grace_o_hara"),
    ],
)
def test_student_id(raw, full_name, expected):
    assert collecting.student_id(raw, full_name) == expected


@pytest.mark.parametrize("bad", ["", "..", ".hidden", "a/b", "al!ce", "x" * 101, "instructor-solution"])
def test_unsafe_ids(bad):
    assert collecting.id_problem(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-01-23-59-00", datetime.datetime(2026, 10, 1, 23, 59)),
        ("2026-10-01 23:59", datetime.datetime(2026, 10, 1, 23, 59)),
        ("2026-10-01 23:59 UTC", datetime.datetime(2026, 10, 1, 23, 59)),
        ("2026-10-01T23:59:00+02:00", datetime.datetime(2026, 10, 1, 21, 59)),
        ("2026-10-01 23:59 Europe/Berlin", datetime.datetime(2026, 10, 1, 21, 59)),
        ("Oct 1 2026 11:59 PM", datetime.datetime(2026, 10, 1, 23, 59)),
    ],
)
def test_parse_time(text, expected):
    assert collecting.parse_time(text) == expected


def test_due_date_alone_means_end_of_day():
    assert collecting.parse_due("2026-10-01") == datetime.datetime(2026, 10, 1, 23, 59, 59)
    with pytest.raises(CourseError, match="Write it like"):
        collecting.parse_due("soon")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (A, ((), True)),
        (f"{A}-2", ((2,), True)),  # Canvas: uploaded a third time under the same name
        (f"{A} (1)", ((1,), True)),  # Chrome, Edge (and Moodle's file picker): the second download
        (f"{A}(3)", ((3,), True)),  # Firefox
        (f"{A} (2)-1", ((2, 1), True)),  # a third download, uploaded twice to Canvas
        (f"{A} (1) (1)", ((1, 1), True)),  # Moodle's file picker renaming a browser's copy
        (f"Copy of {A} (1)", ((1,), False)),
        (f"Copy of {A}", ((), False)),
        ("notes", ((), False)),
    ],
)
def test_resubmission_number(name, expected):
    assert collecting.attempt(name, A) == expected


def test_timestamp_format_is_what_nbgrader_reads():
    from nbgrader.utils import parse_utc

    moment = datetime.datetime(2026, 10, 1, 23, 59, 0)
    assert collecting.utc_text(moment) == "2026-10-01 23:59:00.000000 UTC"
    assert parse_utc(collecting.utc_text(moment)) == moment
