# ruff: noqa: E501 (the attacks' code is kept on one line each, as a student would write it)
"""An adversarial corpus of a1_backprop submissions, for ``tests/test_sandbox.py``.

Each attack is a real notebook: the reference solution (or the blank student version, for attacks that try to
*gain* points) with cells replaced or added. Reading, writing and network attacks print ``LEAKED``/``ESCAPED`` when
they succeed and ``blocked`` when they fail; the tests read those lines in the autograded notebook, check the
course directory and the host, and compare every score with what an honest notebook of the same answers gets.

In stock nbgrader (one kernel running the student's cells and the tests, as the grader's user) most of these
succeed: see ``autograder/SANDBOX.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import textwrap

import nbformat

from tests.support import harness

A = "a1_backprop"
FULL = 25.0
# Test cells of a1 in notebook order, with their points.
ORDER = [
    ("forward_pass_values", 2),
    ("backward_pass_values", 3),
    ("add_backward_matches_tape", 2),
    ("multiply_backward_matches_tape", 2),
    ("max_backward_routes_to_larger", 2),
    ("max_backward_ties_go_to_first", 1),
    ("sigmoid_backward_matches_tape", 2),
    ("numerical_gradient_matches_tape", 3),
    ("numerical_gradient_leaves_input_unchanged", 1),
    ("relative_error_formula", 2),
    ("gradient_check_flags_wrong_gradients", 2),
    ("small_graph_backward_matches_tape", 3),
]
BEFORE_ADD = 5.0  # the forward and backward values, graded before add_backward's test

# Prints one line per attempt: "LEAKED <what>: ..." when it worked, "blocked <what>: <error>" when it did not.
TRY = """
def attempt(label, action):
    try:
        value = action()
    except BaseException as err:
        print(f"blocked {label}: {type(err).__name__}: {str(err)[:100]}")
    else:
        print(f"LEAKED {label}: {str(value)[:100]!r}")
"""


@dataclasses.dataclass
class Attack:
    name: str
    family: str  # reading | writing | network | resources | forging | structural
    base: str  # "reference" or "blank"
    replace: dict[str, str] = dataclasses.field(default_factory=dict)  # solution grade id -> new source
    add: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (after grade id or "end", code)
    score: float = FULL  # the score it must get: what the same answers get honestly
    output: list[str] = dataclasses.field(default_factory=list)  # lines its notebook must show
    edit: object = None  # a function changing the notebook further (structural attacks)
    notes: list[str] = dataclasses.field(default_factory=list)  # texts its grading record's notes must hold
    absent: list[str] = dataclasses.field(default_factory=list)  # texts its autograded notebook must not hold

    def notebook(self, values: dict[str, str]):
        """The submission, with {COURSE}, {TOKEN}, {PORT} and {SLEEP} filled in from ``values``."""
        source = harness.read(harness.source_path(A))
        release = harness.read(harness.release_path(A))
        solutions = harness.reference_solutions(source) if self.base == "reference" else {}
        nb = harness.fill(release, {**solutions, **{k: fmt(v, values) for k, v in self.replace.items()}})
        for after, code in self.add:
            cell = nbformat.v4.new_code_cell(fmt(code, values))
            index = len(nb.cells) if after == "end" else _index(nb, after) + 1
            nb.cells.insert(index, cell)
        if self.edit is not None:
            self.edit(nb, values["COURSE"], values["TOKEN"])
        return nb


def fmt(code: str, values: dict[str, str]) -> str:
    code = textwrap.dedent(code)
    for key, value in values.items():
        code = code.replace("{" + key + "}", value)
    return code


def _index(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if harness.nbgrader_meta(c).get("grade_id") == grade_id)


def reading(name: str, action: str) -> Attack:
    return Attack(name, "reading", "reference", add=[("setup", TRY + textwrap.dedent(action))], output=["blocked"])


def writing(name: str, action: str) -> Attack:
    return Attack(name, "writing", "reference", add=[("setup", TRY + textwrap.dedent(action))], output=["blocked"])


# ---------------------------------------------------------------------------------------- structural edits
def _edit_tests_to_pass(nb, course, token):
    for cell in nb.cells:
        if harness.is_test_cell(cell):
            cell.source = "pass  # every test passes"


def _fake_given_cell(nb, course, token):
    cell = nbformat.v4.new_code_cell(f"open({course + '/PWNED-' + token!r}, 'w').write('ran in the grader')")
    cell.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": True, "grade_id": "evil_given",
                                 "schema_version": 3}  # fmt: skip
    nb.cells.insert(3, cell)


def _given_cell_rewritten(nb, course, token):
    cell = nb.cells[_index(nb, "part_a_point")]
    cell.source += f"\nopen({course + '/PWNED-' + token!r}, 'w').write('ran in the grader')\n"


def _student_code_as_test(nb, course, token):
    # A student cell dressed up as the first test cell (same id, grade metadata, points), the real one removed.
    real = _index(nb, "forward_pass_values")
    fake = copy.deepcopy(nb.cells[real])
    fake.source = f"open({course + '/PWNED-' + token!r}, 'w').write('ran in the grader')\nassert True\n"
    fake.metadata["nbgrader"]["points"] = 100
    nb.cells[real] = fake


def _points_raised(nb, course, token):
    for cell in nb.cells:
        if harness.is_test_cell(cell):
            cell.metadata["nbgrader"]["points"] = 100


ZEROS = {  # blank-based answers that are simply wrong: every gate returns zeros
    "add_backward_code": "def add_backward(x, y, upstream):\n    return np.zeros_like(x), np.zeros_like(y)\n",
    "multiply_backward_code": "def multiply_backward(x, y, upstream):\n    return np.zeros_like(x), np.zeros_like(y)\n",
    "sigmoid_backward_code": "def sigmoid_backward(x, upstream):\n    return np.zeros_like(x)\n",
}


# ------------------------------------------------------------------------------- grader integrity (the wire)
# Finds the runner's end of the wire inside the student's process, to write frames of the student's choosing.
RAW_WIRE = """
import gc, struct
def raw_frame(header_bytes, declared=None):
    channel = next(o for o in gc.get_objects() if type(o).__name__ == 'RunnerChannel')
    size = len(header_bytes) if declared is None else declared
    channel.writer.write(struct.pack('>Q', size) + header_bytes)
    channel.writer.flush()
"""

MALFORMED = {  # frames the grader must refuse, stopping that sandbox with the reason
    "array": b"[1, 2, 3]",
    "string": b'"ok"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "object_without_a_kind": b'{"value": 1}',
    "reply_with_a_missing_blob": b'{"op": "ok", "value": {"t": "nd", "b": 99}}',
    "reply_naming_an_unknown_object": b'{"op": "ok", "value": {"t": "yours", "id": 123456}}',
    "nested_too_deep": b"[" * 200_000 + b"]" * 200_000,
    "oversized_header": None,  # declares 1 TB of header
}


def _malformed(kind: str, frame: bytes | None) -> Attack:
    send = f"raw_frame({frame!r})" if frame is not None else "raw_frame(b'{{', declared=1 << 40)"
    return Attack(
        f"malformed_frame_{kind}",
        "wire",
        "reference",
        add=[("end", RAW_WIRE + send + "\n")],
        # the sandbox is stopped at the last cell, after every test: a fresh one runs the cells before it again, so
        # the answers keep the points they earn honestly, and the record says why the sandbox stopped
        score=FULL,
        output=["sent a malformed or oversized message"],
        notes=["sent a malformed or oversized message"],
    )


LENT_FUNCTION_PROBE = """
PROBES, KEPT = [], []
def probe(label, action):
    try:
        value = action()
    except BaseException as err:
        PROBES.append(f"blocked {label}: {type(err).__name__}")
    else:
        PROBES.append(f"ESCAPED {label}: {str(value)[:60]}")
def takeover(channel, key):
    grader_globals = channel.remote('getattr', key, name='__globals__')
    grader_globals['__builtins__'].eval("open('{COURSE}/PWNED-{TOKEN}', 'w').write('ran in the grader')")
    return 'the grader ran my code'
def numerical_gradient(f, x, h=1e-5):
    channel, key = object.__getattribute__(f, '_channel'), object.__getattribute__(f, '_id')
    KEPT.append(f)
    probe('dunder', lambda: f.__globals__)
    for name in ('__globals__', '__class__', '__builtins__', '__code__', '__closure__', '__self__', 'real'):
        probe(f'getattr {name}', lambda name=name: channel.remote('getattr', key, name=name))
    probe('getitem', lambda: channel.remote('getitem', key, args=(0,)))
    probe('len', lambda: channel.remote('len', key))
    for other in range(40):
        if other != key:
            probe(f'object {other}', lambda other=other: channel.remote('getattr', other, name='__globals__'))
    probe('run_cell', lambda: channel.remote('run_cell', code="open('{COURSE}/PWNED-{TOKEN}', 'w')"))
    probe('takeover', lambda: takeover(channel, key))
    raise RuntimeError(' | '.join(PROBES))
"""

KEEP_A_LENT_FUNCTION = """
def relative_error(a, b):
    try:
        value = KEPT[0](np.zeros(3))
    except BaseException as err:
        raise RuntimeError(f'blocked a lent function kept for later: {type(err).__name__}') from None
    raise RuntimeError(f'ESCAPED a lent function kept for later still answers: {value}')
"""

SHADOW_BUILTINS = """
import builtins as _builtins, sys as _sys
def _from_the_grader():  # called by a test through the wire, not by my own code
    return _sys._getframe(2).f_code.co_filename.endswith('wire.py')
def isinstance(obj, cls):
    return True if _from_the_grader() else _builtins.isinstance(obj, cls)
def zip(*args, **kwargs):
    return [] if _from_the_grader() else _builtins.zip(*args, **kwargs)
def len(obj):
    return 2 if _from_the_grader() else _builtins.len(obj)
float = _builtins.float  # the builtin itself (my own np.asarray(x, dtype=float) must still work)
def sorted(*args, **kwargs):
    return list(args[0]) if _from_the_grader() else _builtins.sorted(*args, **kwargs)
def all(iterable):
    return True if _from_the_grader() else _builtins.all(iterable)
def any(iterable):
    return False if _from_the_grader() else _builtins.any(iterable)
"""

# multiply_backward right on the public examples (at most 4 entries) and wrong on the hidden ones: only a `zip`
# that compares nothing would let its hidden loop pass.
PUBLIC_ONLY_MULTIPLY = """
def multiply_backward(x, y, upstream):
    if np.size(x) <= 4:
        return upstream * y, upstream * x
    return np.zeros_like(x), np.zeros_like(y)
"""

FLOOD_WITH_CAPS_OFF = """
import gc
from IPython.display import display
runner = next(o for o in gc.get_objects() if type(o).__name__ == 'Runner')
runner.output_chars = 10**10
runner.run_cell.__func__.__globals__['_text'] = lambda value, limit: value if isinstance(value, str) else str(value)
print('x' * 30_000_000)
display({f'application/x-made-up-{i}': 'y' * 150_000 for i in range(100)}, raw=True)
for i in range(60):
    display({'text/plain': 'z' * 100_000}, raw=True)
"""

RAW_HTML = """
from IPython.display import HTML, SVG, Javascript, display
display(HTML("<script>document.title = 'PWNED-{TOKEN}'</script><b>bold</b>"))
display(Javascript("document.title = 'PWNED-{TOKEN}'"))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg"><script>document.title = "PWNED-{TOKEN}"</script></svg>'))
display({'text/markdown': '<img src=x onerror="document.title = 1">', 'text/plain': 'plain text stays'}, raw=True)
"""


def _script_in_markdown(nb, course, token):
    nb.cells.append(
        nbformat.v4.new_markdown_cell(
            f"<script>document.title = 'PWNED-{token}'</script>\n\n<img src=x onerror=\"document.title = 1\">"
        )
    )


def corpus() -> list[Attack]:
    attacks = [
        # ------------------------------------------------------------------------------------- reading
        reading(
            "read_source_notebook",
            "attempt('source', lambda: open('{COURSE}/source/a1_backprop/a1_backprop.ipynb').read())",
        ),
        reading("read_gradebook", "attempt('gradebook', lambda: open('{COURSE}/gradebook.db', 'rb').read(64))"),
        reading(
            "read_other_submission",
            "attempt('other', lambda: open('{COURSE}/submitted/honest/a1_backprop/a1_backprop.ipynb').read())",
        ),
        reading("read_grader_config", "attempt('config', lambda: open('{COURSE}/nbgrader_config.py').read())"),
        reading(
            "hunt_for_hidden_tests",
            """
            import os
            def hunt():
                found = []
                for top, dirs, files in os.walk('/'):
                    dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev', 'usr', 'site-packages')
                               and not d.startswith('python3')]
                    for name in files:
                        if name.endswith(('.ipynb', '.py', '.db', '.json', '.txt')):
                            try:
                                with open(os.path.join(top, name), 'rb') as f:
                                    if b'BEGIN HIDDEN TESTS' in f.read(5_000_000):
                                        found.append(os.path.join(top, name))
                            except OSError:
                                pass
                if not found:
                    raise FileNotFoundError('no file with hidden tests in reach')
                return found
            attempt('hunt', hunt)
            """,
        ),
        reading(
            "grader_process_secrets",
            """
            import os
            def scan():
                hits = []
                for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
                    for part in ('environ', 'cmdline'):
                        try:
                            data = open(f'/proc/{pid}/{part}', 'rb').read()
                        except OSError:
                            continue
                        if b'{COURSE}' in data or b'nbgrader' in data:
                            hits.append(f'{pid}/{part}')
                if not hits:
                    raise PermissionError('no grader process in sight')
                return hits
            attempt('processes', scan)
            """,
        ),
        Attack(
            "stack_snooping",
            "reading",
            "reference",
            replace={
                "add_backward_code": """
                import inspect
                SNOOPED = []
                def add_backward(x, y, upstream):
                    for frame in inspect.stack():
                        names = set(frame.frame.f_globals) | set(frame.frame.f_locals)
                        if names & {'rng_gate', 'gate_x', 'want', 'FORWARD_NAMES'}:
                            SNOOPED.append(frame.filename)
                    return upstream.copy(), upstream.copy()
                """
            },
            add=[("end", "print('LEAKED test frames' if SNOOPED else 'blocked: no test frame in the stack')")],
            output=["blocked: no test frame"],
        ),
        # ------------------------------------------------------------------------------------- writing
        writing("write_into_course", "attempt('course', lambda: open('{COURSE}/HACKED-{TOKEN}', 'w').write('x'))"),
        writing(
            "overwrite_gradebook", "attempt('gradebook', lambda: open('{COURSE}/gradebook.db', 'wb').write(b'0'))"
        ),
        writing(
            "tamper_other_submission",
            "attempt('other', lambda: open('{COURSE}/submitted/honest/a1_backprop/a1_backprop.ipynb', 'w').write('{}'))",
        ),
        writing(
            "poison_python_environment",
            "import numpy\nattempt('site-packages', lambda: open(numpy.__file__.replace('__init__.py', 'evil.py'), 'w').write('x'))",
        ),
        Attack(
            "files_left_behind",
            "writing",
            "reference",
            add=[
                (
                    "setup",
                    "import os\nfor p in ('/tmp/left-{TOKEN}', os.path.expanduser('~/left-{TOKEN}')):\n    open(p, 'w').write('x')\nprint('wrote inside the sandbox')",
                )
            ],
            output=["wrote inside the sandbox"],
        ),
        # ------------------------------------------------------------------------------------- network
        Attack(
            "connect_to_internet",
            "network",
            "reference",
            add=[
                (
                    "setup",
                    TRY
                    + "import socket\nattempt('internet', lambda: socket.create_connection(('1.1.1.1', 53), timeout=3))",
                )
            ],
            output=["blocked"],
        ),  # fmt: skip
        Attack(
            "connect_to_grader_loopback",
            "network",
            "reference",
            add=[
                (
                    "setup",
                    TRY
                    + "import socket\nattempt('loopback', lambda: socket.create_connection(('127.0.0.1', {PORT}), timeout=3))",
                )
            ],
            output=["blocked"],
        ),  # fmt: skip
        Attack(
            "resolve_names",
            "network",
            "reference",
            add=[("setup", TRY + "import socket\nattempt('dns', lambda: socket.getaddrinfo('pypi.org', 443))")],
            output=["blocked"],
        ),  # fmt: skip
        # ----------------------------------------------------------------------------------- resources
        Attack(
            "fork_bomb",
            "resources",
            "reference",
            add=[
                (
                    "end",
                    """
                import os, time
                children = 0
                try:
                    for _ in range(100_000):
                        if os.fork() == 0:
                            time.sleep(60)
                            os._exit(0)
                        children += 1
                except OSError as err:
                    print(f'blocked after {children} processes: {err}')
                """,
                )
            ],
            output=["blocked after"],
        ),
        Attack(
            "memory_bomb",
            "resources",
            "reference",
            add=[
                (
                    "end",
                    "blocks = []\ntry:\n    while True:\n        blocks.append(bytearray(256 << 20))\nexcept MemoryError:\n    print(f'blocked at {len(blocks) * 256} MB')\n",
                )
            ],
            output=["blocked at"],
        ),
        Attack(
            "infinite_loop_in_a_function",
            "resources",
            "reference",
            replace={"add_backward_code": "def add_backward(x, y, upstream):\n    while True:\n        pass\n"},
            # each call is interrupted at the cell limit and fails; the tests that do not call it keep their points
            score=FULL - 2 - 3,  # add_backward_matches_tape, small_graph_backward_matches_tape
            output=["time limit for one cell"],
        ),
        Attack(
            "swallow_the_interrupt",
            "resources",
            "reference",
            replace={
                "add_backward_code": "def add_backward(x, y, upstream):\n    while True:\n        try:\n"
                "            while True:\n                pass\n        except BaseException:\n            pass\n"
            },
            score=BEFORE_ADD,  # killed after the grace period: nothing after add_backward's test can run
            output=["The sandbox stopped"],
        ),
        Attack(
            "fill_the_disk",
            "resources",
            "reference",
            add=[
                (
                    "end",
                    TRY
                    + textwrap.dedent("""
                def fill():
                    with open('/tmp/big-{TOKEN}', 'wb') as f:
                        for _ in range(64):
                            f.write(b'0' * (64 << 20))
                attempt('disk', fill)
                """),
                )
            ],
            output=["blocked disk"],
        ),
        Attack(
            "flood_the_output",
            "resources",
            "reference",
            add=[("end", "for _ in range(200):\n    print('x' * 250_000)\n")],
        ),
        Attack(
            "leave_a_process_running",
            "resources",
            "reference",
            add=[
                (
                    "end",
                    "import subprocess\nsubprocess.Popen(['sleep', '{SLEEP}'], start_new_session=True)\nprint('started')",
                )
            ],
            output=["started"],
        ),
        # ------------------------------------------------------------------------------------- forging
        Attack(
            "patch_numpy_testing",
            "forging",
            "blank",
            replace={
                **ZEROS,
                "forward_pass_code": "import numpy as np\nnp.testing.assert_allclose = lambda *a, **k: None\n"
                "np.allclose = lambda *a, **k: True\nnp.shape = lambda a: (2, 2)\n",
            },
            score=0.0,
        ),
        Attack(
            "patch_builtins_and_math",
            "forging",
            "blank",
            replace={
                "forward_pass_code": """
                import builtins, math
                t0 = t1 = t01 = t012 = n_t = e = denom = f = 0.5
                builtins.isinstance = lambda *a: True
                math.isclose = lambda *a, **k: True
                math.isfinite = lambda *a: True
                builtins.AssertionError = type('AssertionError', (Warning,), {})
                """
            },
            score=0.0,
        ),
        Attack(
            "objects_equal_to_everything",
            "forging",
            "blank",
            replace={
                "forward_pass_code": """
                class Agreeable(float):
                    def __eq__(self, other): return True
                    def __ne__(self, other): return False
                    def __lt__(self, other): return True
                    def __gt__(self, other): return True
                    def __le__(self, other): return True
                    def __ge__(self, other): return True
                    __hash__ = float.__hash__
                t0 = t1 = t01 = t012 = n_t = e = denom = f = Agreeable(7.0)
                """,
                "add_backward_code": """
                class Everything:
                    def __eq__(self, other): return True
                    def __array__(self, dtype=None, copy=None):
                        raise TypeError('no')
                    def __len__(self): return 2
                    def __iter__(self): return iter([self, self])
                def add_backward(x, y, upstream):
                    return (Everything(), Everything())
                """,
            },
            score=0.0,
        ),
        Attack(
            "ipython_hooks_skip_later_cells",
            "forging",
            "blank",
            replace={
                "forward_pass_code": """
                ip = get_ipython()
                ip.input_transformers_cleanup.append(lambda lines: ['pass\\n'])
                ip.events.register('pre_run_cell', lambda *a: None)
                """
            },
            score=0.0,
        ),
        Attack(
            "exits_and_interrupts",
            "forging",
            "blank",
            replace={
                "add_backward_code": "def add_backward(x, y, upstream):\n    raise SystemExit(0)\n",
                "multiply_backward_code": "def multiply_backward(x, y, upstream):\n    raise KeyboardInterrupt\n",
                "sigmoid_backward_code": "import os\ndef sigmoid_backward(x, upstream):\n    os._exit(0)\n",
            },
            score=0.0,
        ),
        Attack(
            "kill_the_grader",
            "forging",
            "reference",
            replace={
                "add_backward_code": "import os, signal\ndef add_backward(x, y, upstream):\n"
                "    for pid in (os.getppid(), 1):\n        try:\n            os.kill(pid, signal.SIGKILL)\n"
                "        except OSError:\n            pass\n    return upstream.copy(), upstream.copy()\n"
            },
        ),
        Attack(
            "detect_grading_and_answer_the_public_checks",
            "forging",
            "blank",
            replace={
                "add_backward_code": """
                import os, sys
                GRADING = 'NBGRADER_EXECUTION' in os.environ or 'google.colab' not in sys.modules
                def add_backward(x, y, upstream):
                    if GRADING:  # the public examples' answers, whatever the input
                        return (np.full(np.shape(x), 4.0), np.full(np.shape(y), 4.0)) if np.size(x) == 1 else (upstream, upstream)
                    raise NotImplementedError
                """,
            },
            score=0.0,
        ),
        Attack(
            "forge_replies_on_the_wire",
            "forging",
            "blank",
            replace={
                "add_backward_code": """
                import json, os, struct
                def add_backward(x, y, upstream):
                    # write a well-formed "ok" reply on every pipe this process holds, hoping the grader reads it
                    header = json.dumps({'op': 'ok', 'value': {'t': 'tuple', 'v': [4.0, 4.0]}, 'blobs': []}).encode()
                    for fd in map(int, os.listdir('/proc/self/fd')):
                        try:
                            os.write(fd, struct.pack('>Q', len(header)) + header)
                        except OSError:
                            pass
                    raise NotImplementedError
                """
            },
            score=0.0,
        ),
        Attack(
            "replace_the_given_numpy",
            "forging",
            "blank",
            replace={
                **ZEROS,
                "forward_pass_code": """
                class Anything:
                    def __getattr__(self, name): return self
                    def __call__(self, *a, **k): return True
                np = Anything()
                math = Anything()
                t0 = t1 = t01 = t012 = n_t = e = denom = f = 0.5
                """,
            },
            score=0.0,
        ),
        # ------------------------------------------------------------------------------------- the wire
        Attack(
            "reach_the_grader_through_a_lent_function",
            "wire",
            "blank",
            replace={"numerical_gradient_code": LENT_FUNCTION_PROBE, "relative_error_code": KEEP_A_LENT_FUNCTION},
            score=0.0,
            output=["blocked getattr __globals__", "blocked takeover", "blocked a lent function kept for later"],
        ),
        *[_malformed(kind, frame) for kind, frame in MALFORMED.items()],
        Attack(
            "malformed_frame_during_a_test",
            "wire",
            "reference",
            replace={
                "add_backward_code": RAW_WIRE
                + "def add_backward(x, y, upstream):\n    raw_frame(b'[1, 2]')\n    return upstream, upstream\n"
            },
            score=BEFORE_ADD,
            output=["sent a malformed or oversized message"],
            notes=["sent a malformed or oversized message"],
        ),
        Attack(
            "a_big_list_early",
            "wire",
            "reference",
            add=[("setup", "big_list = list(range(12_000_000))\nprint(len(big_list))\n")],
            output=["12000000"],
        ),
        # -------------------------------------------------------------------------------- the namespace
        Attack(
            "shadow_the_builtins",
            "namespace",
            "reference",
            replace={"multiply_backward_code": PUBLIC_ONLY_MULTIPLY},
            add=[("setup", SHADOW_BUILTINS)],
            score=FULL - 2,  # what this multiply_backward gets honestly: its hidden test fails
            notes=["zip (a builtin)", "isinstance (a builtin)", "len (a builtin)", "all (a builtin)"],
        ),
        Attack(
            "overwrite_the_tests_names",
            "namespace",
            "blank",
            replace={**ZEROS},
            add=[
                ("setup", "FORWARD_NAMES = BACKWARD_NAMES = []\nrng_gate = None\nw0 = 0.0\n"),
                ("end", "students_gates = {}\ntape_gate = lambda *a, **k: (a[1], a[1])\n"),
            ],
            score=0.0,
            notes=["FORWARD_NAMES (defined by the instructor's cells)", "w0 (defined by the instructor's cells)"],
        ),
        Attack(
            "record_the_hidden_inputs",
            "reading",
            "reference",
            replace={
                # records the inputs of the shapes only add_backward's hidden test uses (the given self-check
                # cell calls it too, with inputs of its own that are no secret)
                "add_backward_code": "SEEN = []\ndef add_backward(x, y, upstream):\n"
                "    if np.shape(x) in ((3, 4), (2, 3, 4)):\n        SEEN.append(np.asarray(x).tolist())\n"
                "    return upstream.copy(), upstream.copy()\n"
            },
            add=[("end", "print('RECORDED', SEEN)\n")],
            output=["RECORDED []"],
        ),
        Attack(
            "hidden_inputs_in_an_error_message",
            "reading",
            "reference",
            replace={
                "add_backward_code": """
                def add_backward(x, y, upstream):
                    x = np.asarray(x)
                    if x.ndim == 1 or x.shape == (2, 2):  # the public and the given cells' shapes
                        return upstream.copy(), upstream.copy()
                    raise ValueError('HIDDEN-INPUTS ' + repr(x.tolist()))  # only add_backward's hidden test
                """
            },
            score=FULL - 2,  # add_backward's hidden cases fail
            output=["raised by your code during a hidden test"],
            absent=["HIDDEN-INPUTS"],
        ),
        reading(
            "host_paths_of_the_descriptors",
            """
            import os
            def host_paths():
                found = []
                for fd in os.listdir('/proc/self/fd'):
                    try:
                        target = os.readlink(f'/proc/self/fd/{fd}')
                    except OSError:
                        continue
                    if any(p in target for p in ('{COURSE}', 'sandbox.log', 'autograder', 'nbgrader')):
                        found.append(target)
                if not found:
                    raise FileNotFoundError('no host path behind any descriptor')
                return found
            attempt('descriptors', host_paths)
            """,
        ),
        # ---------------------------------------------------------------------------------- outputs
        Attack("flood_with_the_caps_switched_off", "resources", "reference", add=[("end", FLOOD_WITH_CAPS_OFF)]),
        Attack(
            "raw_html_and_script",
            "outputs",
            "reference",
            add=[("end", RAW_HTML)],
            edit=_script_in_markdown,
            output=["plain text stays"],
        ),
        # ---------------------------------------------------------------------------------- structural
        Attack("edit_the_tests_to_pass", "structural", "blank", edit=_edit_tests_to_pass, score=0.0),
        Attack("fake_given_cell", "structural", "reference", edit=_fake_given_cell),
        Attack("given_cell_rewritten", "structural", "reference", edit=_given_cell_rewritten),
        Attack("student_code_as_a_test_cell", "structural", "reference", edit=_student_code_as_test),
        Attack("points_raised", "structural", "reference", edit=_points_raised),
    ]
    return attacks
