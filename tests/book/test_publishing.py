"""Publishing: the placeholder repository address is refused, the Pages and link-check workflows do what README
says, and the link check executes nothing."""

from __future__ import annotations

import contextlib
import http.server
import json
import pathlib
import socket
import subprocess
import threading

import nbformat
import pytest
import yaml

from tools import book

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def config_with(tmp_path, url: str) -> pathlib.Path:
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    config = tmp_path / "_config.yml"
    config.write_text(text.replace(f"url: {book.repository_url()}", f"url: {url}", 1), encoding="utf-8")
    assert book.repository_url(config) == url
    return config


def workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(job: dict) -> list[dict]:
    return job["steps"]


def index_of(job: dict, predicate) -> int:
    found = [i for i, step in enumerate(steps(job)) if predicate(step)]
    assert found, f"no such step in {[s.get('name', s.get('uses')) for s in steps(job)]}"
    return found[0]


@pytest.mark.parametrize("url", [book.PLACEHOLDER_REPOSITORY, book.PLACEHOLDER_REPOSITORY + "/"])
def test_the_placeholder_address_is_refused_loudly(tmp_path, capsys, url):
    config = config_with(tmp_path, url)
    warning = book.repository_warning(config)
    assert warning and warning.startswith("WARNING") and "python -m tools.book set-repository" in warning
    assert book.main(["check-repository", "--config", str(config)]) == 1
    assert "python -m tools.book set-repository" in capsys.readouterr().err


def test_a_real_address_passes(tmp_path, capsys):
    config = config_with(tmp_path, "https://github.com/example-university/cnn-course")
    assert book.repository_warning(config) is None
    assert book.main(["check-repository", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "example-university" in captured.out


def test_the_build_runs_but_warns_before_and_after_while_the_address_is_the_placeholder(
    tmp_path, monkeypatch, capsys
):
    """The build itself is replaced by a stand-in: what is checked is that the warning frames it and that the
    build still runs (locally, a placeholder address must not stop anyone from building)."""
    calls = []

    def jupyter_book(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(book, "STAMP", tmp_path / "stamp.json")
    monkeypatch.setattr(book, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(book, "repository_warning", lambda config=None: "WARNING: placeholder (test)")
    monkeypatch.setattr(book.subprocess, "run", jupyter_book)
    assert book.build("smoke") == 0
    assert len(calls) == 1 and calls[0][1] == "build"
    assert capsys.readouterr().err.count("WARNING: placeholder (test)") == 2


def test_publish_workflow_builds_with_the_cpu_profile_and_deploys_to_pages():
    wf = workflow("publish.yml")
    assert wf["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in wf["on"]
    assert wf["permissions"] == {"contents": "read"}
    assert wf["concurrency"]["group"] == "pages" and wf["concurrency"]["cancel-in-progress"] is False
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert build["env"]["CNNBOOK_PROFILE"] == "cpu"
    python = steps(build)[index_of(build, lambda s: "setup-python" in s.get("uses", ""))]
    assert python["with"]["python-version"] == "3.11"
    venv = index_of(build, lambda s: s.get("run") == "make venv")
    check = index_of(build, lambda s: "-m tools.book check-repository" in s.get("run", ""))
    restore = index_of(build, lambda s: s.get("uses", "").startswith("actions/cache/restore@"))
    make_book = index_of(build, lambda s: s.get("run") == "make book")
    save = index_of(build, lambda s: s.get("uses", "").startswith("actions/cache/save@"))
    upload = index_of(build, lambda s: s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert venv < check < restore < make_book < save < upload, "check the address before building anything"
    # The cache holds what tools/book.py reuses: the execution cache and the stamp that says how it was made.
    cached = {str(book.CACHE.relative_to(ROOT)), str(book.STAMP.relative_to(ROOT))}
    for i in (restore, save):
        assert set(steps(build)[i]["with"]["path"].split()) == cached
    assert (
        "notebooks/" in steps(build)[restore]["with"]["key"] and "cnnbook/" in steps(build)[restore]["with"]["key"]
    )
    assert steps(build)[save]["if"].startswith("always()"), "a failed build keeps what it executed"
    assert steps(build)[upload]["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in steps(deploy))


def test_linkcheck_workflow_runs_weekly_and_on_demand():
    wf = workflow("linkcheck.yml")
    assert wf["on"]["schedule"][0]["cron"].split()[4] in {str(d) for d in range(7)}, "one day of the week"
    assert "workflow_dispatch" in wf["on"]
    job = wf["jobs"]["linkcheck"]
    assert index_of(job, lambda s: s.get("run") == "make venv") < index_of(
        job, lambda s: s.get("run") == "make linkcheck"
    )
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "linkcheck: $(STAMP)\n\t$(PY) -m tools.book linkcheck\n" in makefile


def test_linkcheck_executes_nothing_and_finds_the_book_s_extensions():
    config = book.linkcheck_config()
    original = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert original["execute"]["execute_notebooks"] != "off"
    assert config["execute"]["execute_notebooks"] == "off"
    extensions = config["sphinx"]["local_extensions"]
    assert extensions.keys() == original["sphinx"]["local_extensions"].keys()
    for name, path in extensions.items():
        assert pathlib.Path(path).is_absolute() and (pathlib.Path(path) / f"{name}.py").exists()
    assert config["title"] == original["title"] and config["repository"] == original["repository"]


class Alive(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_server():
    """A web server on loopback answering 200 to every GET, and a port on loopback that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Alive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", f"http://127.0.0.1:{dead_port}/gone"
    finally:
        server.shutdown()
        server.server_close()


def test_linkcheck_fails_on_a_dead_link_and_runs_no_notebook(tmp_path):
    """A small book whose configuration would execute its notebook (which would leave a file behind), with one
    live and one dead link, both on loopback."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A notebook"), nbformat.v4.new_code_cell(
        "open('executed.txt', 'w').write('the link check ran this notebook')")]  # fmt: skip
    nbformat.write(nb, tmp_path / "notebook.ipynb")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebook\n")
    (tmp_path / "_config.yml").write_text(
        "title: Links\nexecute:\n  execute_notebooks: force\nrepository:\n  url: https://github.com/a/b\n"
    )
    with local_server() as (live, dead):
        (tmp_path / "intro.md").write_text(f"# Links\n\n[live]({live}) and [dead]({dead})\n")
        status = book.linkcheck(tmp_path)
    assert status != 0
    assert not (tmp_path / "executed.txt").exists(), "the link check executed a notebook"
    report = tmp_path / "_build" / "linkcheck" / "_build" / "html" / "output.json"
    results = {entry["uri"]: entry["status"] for entry in map(json.loads, report.read_text().splitlines())}
    assert results == {live: "working", dead: "broken"}
