"""The data-only wire between the grader and a student's sandboxed process: framing, requests and replies.

Both sides use this module: the grader imports it as ``autograder.sandbox.wire``; the sandbox gets the package
folder read-only and the runner imports it from there. Only the standard library is imported at the top, so the
runner can start before NumPy.

A message is a JSON header plus binary blobs, framed by lengths. How values are encoded is ``codec``'s part:
values travel by value and decode into plain types built by the receiver's own code; nothing is ever unpickled.
"""

from __future__ import annotations

import json
import struct
import sys

from .codec import (  # noqa: F401 (the wire's errors and value wrappers, re-exported for both sides)
    Budget,
    Codec,
    Proxy,
    Undecodable,
    Unsendable,
    ValueOrReference,
    WireError,
    flatten_layers,
    is_keras_layer,
    keras_module,
)

MAX_HEADER = 64 << 20  # bytes of JSON in one message
MAX_MESSAGE = 2 << 30  # bytes in one message, blobs included


class PeerGone(WireError):
    """The other side closed the connection (its process ended)."""


class Refused(Exception):
    """A request this side does not answer (the grader answers only calls of functions it lent)."""


# --------------------------------------------------------------------------------------------- framing
def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise PeerGone("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_message(stream, header: dict, blobs: list[bytes]) -> None:
    header = dict(header, blobs=[len(b) for b in blobs])
    data = json.dumps(header, allow_nan=False).encode()
    stream.write(struct.pack(">Q", len(data)))
    stream.write(data)
    for blob in blobs:
        stream.write(blob)
    stream.flush()


def read_message(stream, max_header: int = MAX_HEADER, max_message: int = MAX_MESSAGE) -> tuple[dict, list[bytes]]:
    """One message: its header (always a dict) and its blobs. Anything else, or more than the caps allow, is a
    :class:`WireError` naming what was wrong; nothing larger than the caps is ever read into memory."""
    (size,) = struct.unpack(">Q", _read_exact(stream, 8))
    if size > max_header:
        raise WireError(f"a message header of {size:,} bytes (at most {max_header:,})")
    try:
        header = json.loads(_read_exact(stream, size))
    except (ValueError, TypeError, RecursionError) as err:
        raise WireError(f"a message header that is not valid JSON ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise WireError(f"a message header that is a JSON {type(header).__name__}, not an object")
    sizes = header.get("blobs", [])
    if not isinstance(sizes, list) or not all(type(n) is int and n >= 0 for n in sizes):
        raise WireError("a message whose blob sizes are not a list of non-negative integers")
    if sum(sizes) > max_message:
        raise WireError(f"a message of {sum(sizes):,} bytes of data (at most {max_message:,})")
    return header, [_read_exact(stream, n) for n in sizes]


# -------------------------------------------------------------------------------------- call side effects
def copy_back_targets(args: list) -> list[int]:
    """Which positional-or-keyword argument values are sent back after a call, for in-place changes: NumPy arrays
    and top-level Keras layers and models."""
    np = sys.modules.get("numpy")
    out = []
    for i, value in enumerate(args):
        if np is not None and type(value) is np.ndarray or is_keras_layer(value):
            out.append(i)
    return out


def apply_state(original, new) -> None:
    """Make ``original`` (the caller's object) look like ``new`` (what the callee left of its copy): an array's
    values, or a Keras model's weights, trainable flags and compile settings."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(original, np.ndarray):
        if isinstance(new, np.ndarray) and new.shape == original.shape and original.flags.writeable:
            np.copyto(original, new, casting="unsafe")
        return
    keras = keras_module()
    if keras is None or not isinstance(original, keras.layers.Layer) or not isinstance(new, keras.layers.Layer):
        return
    for sub_old, sub_new in zip(flatten_layers(original), flatten_layers(new)):
        sub_old.trainable = sub_new.trainable
    if len(original.weights) == len(new.weights):
        for old, value in zip(original.weights, new.weights):
            if tuple(old.shape) == tuple(value.shape):
                old.assign(keras.ops.convert_to_numpy(value))
    if getattr(new, "compiled", False) and getattr(new, "optimizer", None) is not None:
        try:
            original.compile_from_config(new.get_compile_config())
            original.optimizer.iterations.assign(int(keras.ops.convert_to_numpy(new.optimizer.iterations)))
        except Exception:  # noqa: BLE001 (a compile config this Keras cannot rebuild leaves it uncompiled)
            pass


def return_aliases(value, args: list) -> list[list[int]]:
    """Which arguments a call returned inside its result: ``[i, -1]`` when it returned argument ``i`` itself,
    ``[i, k]`` when argument ``i`` (a Keras layer) is layer ``k`` of the returned model
    (``build_transfer_model(base, ...)`` returns a model around the very ``base`` it was given)."""
    out = []
    for i, arg in enumerate(args):
        if arg is value and (is_keras_layer(arg) or type(arg).__module__.startswith("numpy")):
            out.append([i, -1])
    if out or not is_keras_layer(value):
        return out
    layers = list(getattr(value, "layers", []) or [])
    for i, arg in enumerate(args):
        if is_keras_layer(arg):
            index = next((k for k, layer in enumerate(layers) if layer is arg), None)
            if index is not None:
                out.append([i, index])
    return out


def apply_aliases(value, args: list, alias: list):
    """The caller's side of :func:`return_aliases`: the caller's own argument object where the callee returned
    its argument, or the returned model rewired around the caller's own layers, so identity checks hold
    (``base in model.layers``) and the caller's own layer is the one the model calls."""
    grafts = {}
    for pair in alias:
        try:
            i, k = int(pair[0]), int(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if not 0 <= i < len(args):
            continue
        if k < 0:
            return args[i]
        grafts[k] = args[i]
    if not grafts or not is_keras_layer(value):
        return value
    layers = list(getattr(value, "layers", []) or [])
    swap = {
        id(layers[k]): original
        for k, original in grafts.items()
        if k < len(layers)
        and type(layers[k]) is type(original)
        and len(layers[k].weights) == len(original.weights)
    }
    if not swap:
        return value
    keras = keras_module()
    try:
        rewired = keras.models.clone_model(value, clone_function=lambda layer: swap.get(id(layer), layer))
    except Exception:  # noqa: BLE001 (a model Keras cannot rebuild this way stays a copy)
        return value
    if getattr(value, "compiled", False) and getattr(value, "optimizer", None) is not None:
        try:
            rewired.compile_from_config(value.get_compile_config())
            rewired.optimizer.iterations.assign(int(keras.ops.convert_to_numpy(value.optimizer.iterations)))
        except Exception:  # noqa: BLE001
            pass
    return rewired


# --------------------------------------------------------------------------------------------- the channel
BUILTIN_ERRORS = {
    name: value
    for name, value in vars(__import__("builtins")).items()
    if isinstance(value, type) and issubclass(value, Exception)
}


class RemoteError(Exception):
    """An exception raised on the other side (in the student's code, seen from the grader), carried as text."""

    def __init__(self, type_name: str, message: str, traceback_text: str = ""):
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name, self.message, self.traceback_text = type_name, message, traceback_text


def rebuild_error(header: dict) -> Exception:
    """The local exception for a 'raise' reply: the builtin type of the same name when there is one (so that
    ``except ValueError`` in a test still works), else :class:`RemoteError`; never a class the other side chose."""
    type_name, message = str(header.get("type", "Exception")), str(header.get("message", ""))
    traceback_text = str(header.get("traceback", ""))
    cls = BUILTIN_ERRORS.get(type_name)
    if cls is not None and cls not in (StopIteration, StopAsyncIteration):
        try:
            err = cls(message)
        except Exception:  # noqa: BLE001 (a builtin whose constructor wants other arguments)
            err = RemoteError(type_name, message, traceback_text)
    else:
        err = RemoteError(type_name, message, traceback_text)
    err.traceback_text = traceback_text  # type: ignore[attr-defined]
    return err


def describe_error(err: BaseException, with_traceback: bool = True) -> dict:
    import traceback

    try:
        message = str(err)
    except Exception:  # noqa: BLE001
        message = "?"
    text = ""
    try:
        if with_traceback:
            text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    except Exception:  # noqa: BLE001
        text = ""
    return {"op": "raise", "type": type(err).__name__, "message": message[:20000], "traceback": text[-20000:]}


class Channel:
    """One end of the connection. ``remote`` sends a request and waits for its reply, serving the other side's
    requests (callbacks) in the meantime; ``serve`` answers one request.

    The student's side (``autograder.sandbox.runner``) answers call, getattr, getitem and len on what it lent, plus
    its ``extra_ops`` (run_cell, values, assign, seed). The grader's side is built with ``grader=True``: it lends
    nothing but the functions a test passes to the student's code, and answers nothing but ``call`` on those, with
    data in and data out (no attribute, item or length requests, no references handed out in a reply), at most
    ``MAX_NESTING`` callbacks deep; everything the student's side sends it is read under ``max_header`` and
    ``max_message``."""

    MAX_NESTING = 32

    def __init__(self, reader, writer, allow_references: bool = True, grader: bool = False,
                 max_header: int = MAX_HEADER, max_message: int = MAX_MESSAGE):  # fmt: skip
        self.reader, self.writer = reader, writer
        self.grader = grader
        self.codec = Codec(self._proxy, allow_references=allow_references, lend_callables_only=grader)
        self.answers = ("call",) if grader else ("call", "getattr", "getitem", "len")
        self.max_header, self.max_message = max_header, max_message
        self.extra_ops: dict = {}
        self.before_call = None  # called before each request to the other side (not re-entrantly)
        self._in_hook = False
        self._nesting = 0

    def _proxy(self, key, kind, type_name, text):
        return Proxy(self, self.codec, key, kind, type_name, text)

    def send(self, header: dict, blobs: list[bytes] | None = None) -> None:
        write_message(self.writer, header, blobs or [])

    def revoke(self) -> None:
        """Forget everything this side lent: a reference the other side kept answers nothing from now on."""
        self.codec.exports.clear()

    def remote(self, op: str, key: int | None = None, args: tuple = (), kwargs: dict | None = None, **fields):
        if self.before_call is not None and not self._in_hook:
            self._in_hook = True
            try:
                self.before_call()
            finally:
                self._in_hook = False
        kwargs = kwargs or {}
        blobs: list[bytes] = []
        header = {"op": op, "id": key, **fields}
        values = list(args) + list(kwargs.values())
        header["call"] = self.codec.encode_call(tuple(args), kwargs, blobs)
        self.send(header, blobs)
        while True:
            reply, reply_blobs = read_message(self.reader, self.max_header, self.max_message)
            kind = reply.get("op")
            if kind == "ok":
                return self._result(reply, reply_blobs, values)
            if kind == "raise":
                raise rebuild_error(reply)
            if not isinstance(kind, str):
                raise WireError(f"a message without a request or reply kind ({type(kind).__name__})")
            self.serve(reply, reply_blobs)

    def _result(self, reply: dict, blobs: list[bytes], values: list):
        """The value of an 'ok' reply, with the arguments' in-place changes applied. A reply that is not shaped as
        one is a :class:`WireError`; a value this side cannot rebuild is :class:`Undecodable`."""
        try:
            back = reply.get("back") or []
            if not isinstance(back, list):
                raise WireError("a reply whose changed arguments are not a list")
            for entry in back:
                if not (isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int):
                    raise WireError("a changed argument that is not an [index, value] pair")
                if 0 <= entry[0] < len(values):
                    apply_state(values[entry[0]], self.codec.decode(entry[1], blobs))
            value = self.codec.decode(reply.get("value"), blobs)
            alias = reply.get("alias") or []
            if not isinstance(alias, list):
                raise WireError("a reply whose aliases are not a list")
            return apply_aliases(value, values, alias)
        except (WireError, Undecodable):
            raise
        except (Exception, RecursionError, MemoryError) as err:  # noqa: BLE001 (whatever the value did to us)
            raise WireError(f"a malformed reply ({type(err).__name__}: {str(err)[:200]})") from None

    def serve(self, header: dict, blobs: list[bytes]) -> None:
        op = header.get("op")
        everything: list = []
        try:
            if self._nesting >= self.MAX_NESTING:
                raise Refused(f"callbacks nested more than {self.MAX_NESTING} deep")
            self._nesting += 1
            try:
                call = header.get("call") or {"args": [], "kwargs": {}}
                if not (isinstance(call, dict) and isinstance(call.get("args"), list)
                        and isinstance(call.get("kwargs"), dict)):  # fmt: skip
                    raise WireError("a request whose arguments are not shaped as [args] and {kwargs}")
                try:
                    args, kwargs = self.codec.decode_call(call, blobs)
                except (WireError, Undecodable):
                    raise
                except Exception as err:  # noqa: BLE001
                    raise WireError(f"a request with malformed arguments ({type(err).__name__})") from None
                if not all(isinstance(k, str) for k in kwargs):
                    raise WireError("a request whose keyword names are not strings")
                alias: list = []
                back: list = []
                if op in self.extra_ops and not self.grader:
                    value = self.extra_ops[op](header, args, kwargs)
                else:
                    if op not in self.answers:
                        raise Refused(f"this side answers only {', '.join(self.answers)}, not {op!r}")
                    key = header.get("id")
                    target = self.codec.exports.get(key) if type(key) is int else None
                    if target is None:
                        raise Refused(f"no object {key!r} to {op} (nothing lent under that number, or no longer)")
                    if op == "call":
                        value = target(*args, **kwargs)
                    elif op == "getattr":
                        value = getattr(target, str(header.get("name")))
                    elif op == "getitem":
                        value = target[args[0]]
                    else:
                        value = len(target)
                    everything = list(args) + list(kwargs.values())
                    back = copy_back_targets(everything) if op == "call" else []
                    alias = return_aliases(value, everything) if op == "call" else []
            finally:
                self._nesting -= 1
            reply_blobs: list[bytes] = []
            returned = None if any(layer < 0 for _, layer in alias) else value
            lend = self.codec.allow_references
            if self.grader:  # data out only: nothing of the grader's is lent in a reply
                self.codec.allow_references = False
            try:
                reply = {"op": "ok", "value": self.codec.encode(returned, reply_blobs)}
                if back:
                    reply["back"] = [[i, self.codec.encode(everything[i], reply_blobs)] for i in back]
            finally:
                self.codec.allow_references = lend
            if alias:
                reply["alias"] = alias
        except WireError:
            raise
        except BaseException as err:  # noqa: BLE001 (the student's SystemExit too: it becomes a reply)
            if isinstance(err, KeyboardInterrupt):
                raise
            reply, reply_blobs = describe_error(err, with_traceback=not self.grader), []
        self.send(reply, reply_blobs)
