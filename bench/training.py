"""Training time to a target accuracy, from each training notebook executed as it is, its fits timed by epoch.

Usage: .venv/bin/python bench/training.py [--device cpu|gpu] [--only 05 a4 ...] [--data standin|auto]
       [--relative 0.95] [--no-record]

The training notebooks are lectures 05 to 09 (they train Keras models through
``cnnbook.training.train_and_report``) and assignment a4's source notebook (its reference solution, trained by the
graded cell's ``model.fit``). Each is executed with nbclient in its own folder, as the book build does, under the
profile of the device:

* ``--device cpu`` (default): the ``cpu`` profile, with any GPU hidden from TensorFlow;
* ``--device gpu``: the ``gpu`` profile (full datasets and epochs), for a GPU machine (Colab, a lent GPU box). It
  stops with an error, before running anything, when TensorFlow sees no GPU.

One cell is added after the standard first cell; the notebook's own cells are not changed. It wraps
``keras.Model.fit`` with a callback that records, after every epoch, the training time so far and the test
accuracy: evaluated by the callback with its clock paused (so the times are those of training alone), or taken
from Keras's validation accuracy when the run's validation set is its test set. It also wraps
``cnnbook.training.train_and_report`` to learn each run's label, data and test set, and ``cnnbook.data.load`` to
record which datasets were used. A fit outside ``train_and_report`` (a4's graded run) is tested on the set named
by the notebook's ``test`` entry below. The weights cache of lecture 09 points to an empty folder, so every model
is trained.

Targets, per run, in this order:

* stated ones: a4's tier 3 threshold for the dataset in use (``autograder/thresholds/a4_keras_cnn.json``,
  measured from runs of the reference solution); 0.92 for lecture 06's Fashion-MNIST CNN on the real
  Fashion-MNIST (source lecture S5's claim for a full-scale run; it does not apply to the stand-in);
* otherwise none is stated in the notebook, and the target is ``--relative`` (0.95) times the best test accuracy
  the run reached: the time the run took to come within 5% of its best.

Data: ``--data standin`` (default) sets ``CNNBOOK_STANDIN=1``, so the announced offline stand-ins are used
(scikit-learn's digits for MNIST and Fashion-MNIST, the procedural shapes for CIFAR-10 and the flowers) and no
download is tried; ``--data auto`` lets the notebooks try the real datasets first (Colab). Lecture 08 tries the
ImageNet weights of Xception either way and says so when it falls back to random weights. Every run records the
data it used.

Appends the notebooks' wall times, each run's epochs (seconds, test accuracy) and its time to target, with the
date, the commit, the machine and the device TensorFlow saw, to ``bench/results/training.json``. ``--profile``
overrides the device's profile for checking this script (e.g. ``--profile smoke``); such a run is not recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "training.json"
A4_THRESHOLDS = ROOT / "autograder" / "thresholds" / "a4_keras_cnn.json"


@dataclasses.dataclass(frozen=True)
class Notebook:
    path: str
    main: tuple[str, ...]  # label prefixes of the runs the tables show
    test: str | None = None  # for fits outside train_and_report: an expression for (x_test, y_test)


NOTEBOOKS = {
    "05_training_deep_nets": Notebook("notebooks/05_training_deep_nets.ipynb", ("2x100 adam 0.001",)),
    "06_keras_cnns": Notebook(
        "notebooks/06_keras_cnns.ipynb", ("S1 CNN", "S5 Fashion-MNIST CNN", "2 conv, RMSprop, long")
    ),  # fmt: skip
    "07_augmentation": Notebook("notebooks/07_augmentation.ipynb", ("no augmentation", "augmentation")),
    "08_transfer_learning": Notebook(
        "notebooks/08_transfer_learning.ipynb", ("phase 1", "phase 2", "pretraining on the source task")
    ),  # fmt: skip
    "09_what_cnns_learn": Notebook("notebooks/09_what_cnns_learn.ipynb", ("small CNN",)),
    "a4_keras_cnn": Notebook(
        "source/a4_keras_cnn/a4_keras_cnn.ipynb", ("model.fit",), test="(x_test_ready, y_test)"
    ),
}
DEVICE_PROFILE = {"cpu": "cpu", "gpu": "gpu"}

PROBE_CELL = """\
# Added by bench/training.py for this run only: times every model.fit epoch by epoch.
import sys as _bench_sys

_bench_sys.path.append({root!r})
from bench.training import install_probe as _bench_install_probe

_bench_install_probe({log!r}, {test!r})"""


# ------------------------------------------------------------------------------------------ inside the kernel


def install_probe(log_path: str, test_expression: str | None = None) -> None:
    """Wrap ``keras.Model.fit``, ``cnnbook.training.train_and_report`` and ``cnnbook.data.load`` in this kernel.

    Every fit appends one JSON line to ``log_path``: its label, data, model, and per epoch the training seconds so
    far (the probe's own evaluations excluded) and the test accuracy.
    """
    import keras
    from IPython import get_ipython

    import cnnbook

    shell = get_ipython()
    pending: dict = {}
    datasets: list[str] = []

    def write(record: dict) -> None:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record, default=str) + "\n")

    write({"kind": "device", "device": cnnbook.device_name(), "keras": keras.__version__})
    cell = {"id": None}

    def note_cell(info):  # which cell is running, for the records
        cell["id"] = getattr(info, "cell_id", None)

    shell.events.register("pre_run_cell", note_cell)

    class EpochClock(keras.callbacks.Callback):
        def __init__(self, test, test_is_validation: bool, batch_size):
            super().__init__()
            self.test, self.test_is_validation, self.batch_size = test, test_is_validation, batch_size

        def on_train_begin(self, logs=None):
            self.start, self.paused, self.rows = time.perf_counter(), 0.0, []

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            logs = logs or {}
            row = {"epoch": epoch + 1, "seconds": round(now - self.start - self.paused, 3)}
            for key in ("accuracy", "val_accuracy"):
                if key in logs:
                    row[key] = round(float(logs[key]), 5)
            if self.test_is_validation and "val_accuracy" in logs:
                row["test_accuracy"] = row["val_accuracy"]
            elif self.test is not None:
                x, y = self.test
                kwargs = {"batch_size": self.batch_size} if y is not None and self.batch_size else {}
                scores = self.model.evaluate(x, y, verbose=0, return_dict=True, **kwargs)
                accuracy = next((v for k, v in scores.items() if k.endswith("accuracy")), None)
                if accuracy is not None:
                    row["test_accuracy"] = round(float(accuracy), 5)
                self.paused += time.perf_counter() - now
            self.rows.append(row)

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start - self.paused

    original_fit = keras.Model.fit

    def fit(self, *args, **kwargs):
        run = pending.pop("run", None)  # set by train_and_report for the one fit it makes
        if run is None:
            test = None
            if test_expression:
                try:
                    test = eval(test_expression, shell.user_ns)
                except Exception:  # not defined at this fit: no per-epoch test accuracy
                    test = None
            run = {
                "kind": "fit",
                "label": "model.fit",
                "data": datasets[-1] if datasets else None,
                "test": test,
                "test_is_validation": False,
                "batch_size": kwargs.get("batch_size") or 32,
            }
        clock = EpochClock(run["test"], run["test_is_validation"], run["batch_size"])
        if len(args) > 5:  # callbacks given by position
            args = (*args[:5], [*(args[5] or []), clock], *args[6:])
        else:
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), clock]
        start = time.perf_counter()
        history = original_fit(self, *args, **kwargs)
        record = {
            "kind": run["kind"],
            "label": run["label"],
            "data": run["data"],
            "model": self.name,
            "parameters": int(self.count_params()),
            "cell_id": cell["id"],
            "execution_count": shell.execution_count - 1,  # IPython counts the running cell before running it
            "training_seconds": round(clock.seconds, 2),
            "probe_evaluation_seconds": round(clock.paused, 2),
            "fit_wall_seconds": round(time.perf_counter() - start, 2),
            "epochs": clock.rows,
        }
        if run["kind"] == "train_and_report":
            pending["record"] = record
        else:
            write(record)
        return history

    keras.Model.fit = fit
    original_train_and_report = cnnbook.training.train_and_report

    def train_and_report(model, train, **kwargs):
        test, validation = kwargs.get("test"), kwargs.get("validation")
        x, y = test if isinstance(test, tuple) and len(test) == 2 else (test, None)
        train_y = train[1] if isinstance(train, tuple) and len(train) == 2 else None
        pending["run"] = {
            "kind": "train_and_report",
            "label": kwargs.get("label", ""),
            "data": kwargs.get("data"),
            "test": (x, y),
            "test_is_validation": validation is test,
            "batch_size": kwargs.get("batch_size", 128) if train_y is not None else None,
        }
        try:
            result = original_train_and_report(model, train, **kwargs)
        finally:
            pending.pop("run", None)
        record = pending.pop("record", None)
        if record is not None:
            record["notebook_test_accuracy"] = round(float(result.test_accuracy), 5)
            record["notebook_seconds"] = round(float(result.seconds), 2)
            write(record)
        return result

    cnnbook.training.train_and_report = train_and_report
    original_load = cnnbook.data.load

    def load(name, **kwargs):
        dataset = original_load(name, **kwargs)
        datasets.append(dataset.describe())
        write({"kind": "dataset", "requested": name, "used": dataset.name, "standin": dataset.is_standin,
               "describe": dataset.describe()})  # fmt: skip
        return dataset

    cnnbook.data.load = load


# ----------------------------------------------------------------------------------------------- the benchmark


def stated_targets() -> dict:
    """{notebook: {label prefix: {dataset: (target, where it comes from)}}}."""
    s5 = (0.92, "S5's claim for a full-scale run on Fashion-MNIST")
    targets = {"06_keras_cnns": {"S5 Fashion-MNIST CNN": {"fashion_mnist": s5}}}
    if A4_THRESHOLDS.exists():
        record = json.loads(A4_THRESHOLDS.read_text())
        targets["a4_keras_cnn"] = {
            "model.fit": {
                name: (entry["tiers"][2], f"a4's tier 3 on {name}")
                for name, entry in record.get("datasets", {}).items()
                if entry.get("measured") and entry.get("tiers")
            }
        }
    return targets


def dataset_of(data: str | None) -> str | None:
    """The dataset used, from a ``Dataset.describe()`` text such as ``digits (stand-in for mnist), ...``."""
    if not data:
        return None
    return data.split()[0].rstrip(",;")


def time_to_target(run: dict, stated: dict, relative: float) -> dict:
    accuracies = [row["test_accuracy"] for row in run["epochs"] if "test_accuracy" in row]
    if not accuracies:
        return {"target": None, "target_source": "no per-epoch test accuracy"}
    if max(accuracies) <= 0:
        return {"target": None, "target_source": "test accuracy 0 at every epoch", "final_test_accuracy": 0.0}
    dataset = dataset_of(run.get("data"))
    for prefix, by_dataset in stated.items():
        if run["label"].startswith(prefix) and dataset in by_dataset:
            target, source = by_dataset[dataset]
            kind = "stated"
            break
    else:
        target, kind = round(relative * max(accuracies), 4), "relative"
        source = f"{relative} x the run's best test accuracy ({max(accuracies):.4f}); no target stated"
    reached = next((row for row in run["epochs"] if row.get("test_accuracy", -1) >= target), None)
    return {
        "target": target,
        "target_kind": kind,
        "target_source": source,
        "epochs_to_target": reached["epoch"] if reached else None,
        "seconds_to_target": reached["seconds"] if reached else None,
        "best_test_accuracy": max(accuracies),
        "final_test_accuracy": accuracies[-1],
    }


def execute(name: str, notebook: Notebook, log: pathlib.Path, cell_timeout: int, relative: float) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = ROOT / notebook.path
    nb = nbformat.read(path, as_version=4)
    first = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
    probe = PROBE_CELL.format(root=str(ROOT), log=str(log), test=notebook.test)
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(probe))
    folder = {"metadata": {"path": str(path.parent)}}  # the notebook's own folder, as in the book build
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", resources=folder)
    error = None
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc)[-3000:]
    wall = time.perf_counter() - start

    cells = {}  # cell id and execution count -> (index in the notebook as committed, seconds)
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type != "code" or index == first + 1 or not cell.get("execution_count"):
            continue
        try:
            began = datetime.datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            ended = datetime.datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            seconds = round((ended - began).total_seconds(), 2)
        except (KeyError, ValueError):
            seconds = None
        cells[cell.execution_count] = cells[cell.get("id")] = (index if index <= first else index - 1, seconds)

    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    stated = stated_targets().get(name, {})
    runs, datasets, device = [], [], None
    for record in records:
        if record["kind"] == "device":
            device = record["device"]
            continue
        if record["kind"] == "dataset":
            datasets.append(record)
            continue
        cell_id, count = record.pop("cell_id"), record.pop("execution_count")
        index, _ = cells.get(cell_id) or cells.get(count) or (None, None)
        if record["kind"] == "fit" and index is not None:
            record["label"] = f"model.fit in cell {index}"
        record.update(cell=index, **time_to_target(record, stated, relative))
        runs.append(record)
    seconds_of_cell = dict(cells.values())
    training_cells = {run["cell"] for run in runs if run["cell"] is not None}
    return {
        "path": notebook.path,
        "status": "ok" if error is None else "failed",
        "error": error,
        "device_seen_by_kernel": device,
        "wall_seconds": round(wall, 1),
        "training_seconds": round(sum(run["training_seconds"] for run in runs), 1),
        "training_cells": sorted(training_cells),
        "training_cells_seconds": round(sum(seconds_of_cell[cell] or 0 for cell in training_cells), 1),
        "datasets": datasets,
        "main_runs": [run["label"] for run in runs if run["label"].startswith(notebook.main)],
        "runs": runs,
    }


def visible_gpus() -> int:
    code = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


def pick(names: list[str] | None) -> list[str]:
    if not names:
        return list(NOTEBOOKS)
    chosen = []
    for wanted in names:
        matches = [name for name in NOTEBOOKS if name.startswith(wanted)]
        if len(matches) != 1:
            raise SystemExit(f"--only {wanted}: expected one of {', '.join(NOTEBOOKS)} (or a unique prefix)")
        chosen.append(matches[0])
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=sorted(DEVICE_PROFILE), default="cpu")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK", help=f"some of: {', '.join(NOTEBOOKS)}")
    parser.add_argument(
        "--data",
        choices=["standin", "auto"],
        default="standin",
        help="standin: CNNBOOK_STANDIN=1 (no download tried); auto: real data when it can be fetched, else the "
        "stand-in with its notice",
    )
    parser.add_argument(
        "--relative",
        type=float,
        default=0.95,
        help="where no target is stated: this fraction of the run's best test accuracy",
    )
    parser.add_argument("--cell-timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument(
        "--profile",
        choices=["smoke", "cpu", "gpu"],
        help="override the device's profile (a check of this script: not recorded)",
    )
    parser.add_argument("--no-record", action="store_true", help="print the entry, do not append it")
    args = parser.parse_args()
    names = pick(args.only)
    profile = args.profile or DEVICE_PROFILE[args.device]
    record = not args.no_record and args.profile in (None, DEVICE_PROFILE[args.device])

    if args.device == "gpu":
        if visible_gpus() == 0:
            print(
                "--device gpu: TensorFlow sees no GPU on this machine (tf.config.list_physical_devices('GPU') is "
                "empty). Run it where a GPU is visible (Colab with a GPU runtime, a GPU machine with TensorFlow's "
                "CUDA build), or use --device cpu.",
                file=sys.stderr,
            )
            return 2
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # the cpu measurement stays on the CPU on a GPU machine too

    sys.path.insert(0, str(ROOT))
    from bench.fresh_clone import machine

    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip())
    entry = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit,
             "uncommitted_changes": dirty, "machine": machine(), "device": args.device, "profile": profile,
             "data": args.data, "relative_target": args.relative, "notebooks": {}}  # fmt: skip

    status = 0
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        tmp = pathlib.Path(tmp)
        os.environ.update(
            CNNBOOK_PROFILE=profile,
            CNNBOOK_CACHE=str(tmp / "cnnbook-cache"),  # lecture 09 finds no saved weights: it trains
            CNNBOOK_STATIC_WIDGETS="1",  # as in the book build
            TF_CPP_MIN_LOG_LEVEL="3",
        )
        # The kernel "python3" of this environment, as the book build does.
        kernels = str(pathlib.Path(sys.prefix) / "share" / "jupyter")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [kernels, os.environ.get("JUPYTER_PATH")]))
        os.environ.pop("CNNBOOK_STRICT_DATA", None)
        if args.data == "standin":
            os.environ["CNNBOOK_STANDIN"] = "1"
        else:
            os.environ.pop("CNNBOOK_STANDIN", None)
        for name in names:
            print(f"{name}: executing under profile {profile} ...", flush=True)
            result = execute(name, NOTEBOOKS[name], tmp / f"{name}.jsonl", args.cell_timeout, args.relative)
            entry["notebooks"][name] = result
            entry.setdefault("device_seen_by_kernel", result["device_seen_by_kernel"])
            print(
                f"{name}: {result['status']}, {result['wall_seconds']:.0f} s in all, {len(result['runs'])} fit(s) "
                f"training {result['training_seconds']:.0f} s",
                flush=True,
            )
            if result["error"]:
                status = 1
                print(result["error"], file=sys.stderr)
            for run in result["runs"]:
                if run["label"] in result["main_runs"]:
                    reached = "not reached"
                    if run.get("epochs_to_target"):
                        reached = f"reached at epoch {run['epochs_to_target']}, {run['seconds_to_target']:.1f} s"
                    print(
                        f"  {run['label']} [{run['data']}]: target {run['target']} ({run.get('target_kind')}) "
                        f"{reached}; final test accuracy {run.get('final_test_accuracy')} (the notebook's: "
                        f"{run.get('notebook_test_accuracy', '-')}) after "
                        f"{len(run['epochs'])} epoch(s), {run['training_seconds']:.1f} s",
                        flush=True,
                    )
    if record:
        history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        history.append(entry)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(history, indent=1) + "\n")
        print(f"appended to {RESULTS.relative_to(ROOT)}")
    else:
        print(json.dumps(entry, indent=1))
        print("(not recorded: --no-record or a --profile override)")
    return status


if __name__ == "__main__":
    sys.exit(main())
