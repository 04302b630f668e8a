"""The data-only wire between the grader and a student's sandboxed process.

Both sides use this module: the grader imports it as ``autograder.wire``; the sandbox gets a read-only copy next to
``sandbox_runner.py``. Only the standard library is imported at the top, so the runner can start before NumPy.

A message is a JSON header plus binary blobs, framed by lengths. Values travel **by value** and decode into plain
types on the receiving side, built by the receiver's own code:

* ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``; tuples, lists, sets and dicts of values
  (subclasses are reduced to their base type, so an ``int`` whose ``__eq__`` always says yes arrives as an int);
* NumPy arrays and scalars as ``.npy`` bytes, read back with ``allow_pickle=False`` (object arrays are refused);
  TensorFlow tensors and Keras variables arrive as NumPy arrays;
* Keras models and layers as their JSON config and weights, rebuilt with ``safe_mode=True`` (no Lambda code, no
  arbitrary classes); compile settings and the optimizer's step count come along; a Keras ``History`` as its
  ``epoch``, ``history`` and ``params``; a ``tf.data.Dataset`` as its batches;
* anything else, functions included, as a *reference*: the receiver gets a :class:`Proxy` whose calls and
  attribute reads are requests back to the owner, answered again by value.

Nothing is ever unpickled, so the student's process cannot hand the grader an object that runs its code.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import struct
import sys

MAX_HEADER = 64 << 20  # bytes of JSON in one message
MAX_MESSAGE = 2 << 30  # bytes in one message, blobs included


class WireError(Exception):
    """The other side sent something malformed or too large, or went away."""


class PeerGone(WireError):
    """The other side closed the connection (its process ended)."""


class Undecodable(Exception):
    """A well-formed value this side cannot rebuild (a Keras model whose config names a class it does not know):
    the call that returned it fails, and the connection goes on."""


class Refused(Exception):
    """A request this side does not answer (the grader answers only calls of functions it lent)."""


class Unsendable(TypeError):
    """A value that cannot cross the wire by value (and was not allowed to travel as a reference)."""


class Budget:
    """What one reply may still carry by value: bytes of blobs (arrays, weights) and bytes of JSON header (numbers,
    strings and containers travel inside the header). Shared by every :class:`ValueOrReference` of a reply."""

    __slots__ = ("blob", "header")

    def __init__(self, blob: int, header: int):
        self.blob, self.header = blob, header


class ValueOrReference:
    """Send ``value`` by value if it fits what is left of ``budget``, else as a reference: the names a student's
    cell defines travel this way, so a 6 GB array, a list of 12 million ints or an unencodable object costs a
    reference, not the reply."""

    __slots__ = ("value", "budget")

    def __init__(self, value, budget: Budget):
        self.value, self.budget = value, budget


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


# ---------------------------------------------------------------------------------------------- values
def _keras():
    return sys.modules.get("keras")


def _is_keras_layer(value) -> bool:
    keras = _keras()
    return keras is not None and isinstance(value, keras.layers.Layer)


def flatten_layers(layer) -> list:
    return list(layer._flatten_layers(include_self=True, recursive=True))


PLAIN_TAGS = ("int", "float", "complex", "tuple", "list", "set", "frozenset", "dict")


class Codec:
    """Encodes values for one side of a connection and decodes what the other side sent.

    ``exports`` holds the objects this side lent out as references (id -> object); ``make_proxy(id, kind, text)``
    builds the local stand-in for a reference the other side lent."""

    def __init__(self, make_proxy, allow_references: bool = True, lend_callables_only: bool = False):
        self.exports: dict[int, object] = {}
        self.make_proxy = make_proxy
        self.allow_references = allow_references
        # the grader's side: it lends the other side nothing but functions a test passes (to be called with data)
        self.lend_callables_only = lend_callables_only
        self.plain = False  # True: decode plain JSON data only (no arrays, Keras objects or references)
        self._next = 1

    # -------------------------------------------------------------------------------------- encoding
    def export(self, value) -> int:
        for key, held in self.exports.items():
            if held is value:
                return key
        key, self._next = self._next, self._next + 1
        self.exports[key] = value
        return key

    def encode(self, value, blobs: list[bytes], depth: int = 0):
        if depth > 100:
            raise Unsendable("a value nested more than 100 levels deep")
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        if kind is ValueOrReference:
            return self._value_or_reference(value, blobs, depth)
        if kind is int:
            return value if abs(value) < 2**53 else {"t": "int", "v": str(value)}
        if kind is float:
            return value if math.isfinite(value) else {"t": "float", "v": repr(value)}
        if isinstance(value, Proxy) and value._codec is self:
            return {"t": "yours", "id": value._id}
        np = sys.modules.get("numpy")
        if np is not None and isinstance(value, np.ndarray) and not value.dtype.hasobject:
            return {"t": "nd", "b": self._npy(np, np.asarray(value).view(np.ndarray), blobs)}
        if np is not None and isinstance(value, np.generic) and not isinstance(value, np.object_):
            return {"t": "npscalar", "b": self._npy(np, np.asarray(value), blobs)}
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return self.encode(int.__index__(value), blobs, depth + 1)
        if isinstance(value, float):
            return self.encode(float.__float__(value), blobs, depth + 1)
        if isinstance(value, complex):
            return {"t": "complex", "re": self.encode(value.real, blobs), "im": self.encode(value.imag, blobs)}
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, (bytes, bytearray)):
            blobs.append(bytes(value))
            return {"t": "bytes", "b": len(blobs) - 1}
        if isinstance(value, (tuple, list, set, frozenset)):
            name = {tuple: "tuple", list: "list", set: "set", frozenset: "frozenset"}
            tag = next(n for base, n in name.items() if isinstance(value, base))
            items = list(tuple.__iter__(value) if isinstance(value, tuple) else value)
            return {"t": tag, "v": [self.encode(item, blobs, depth + 1) for item in items]}
        if isinstance(value, dict):
            keys, values = list(dict.keys(value)), list(dict.values(value))
            return {
                "t": "dict",
                "k": [self.encode(k, blobs, depth + 1) for k in keys],
                "v": [self.encode(v, blobs, depth + 1) for v in values],
            }
        keras = _keras()
        if keras is not None:
            if isinstance(value, keras.layers.Layer):
                return self._encode_layer(keras, value, blobs)
            if isinstance(value, keras.callbacks.History):
                return {
                    "t": "history",
                    "epoch": self.encode(list(getattr(value, "epoch", [])), blobs, depth + 1),
                    "history": self.encode(dict(getattr(value, "history", {})), blobs, depth + 1),
                    "params": self.encode(dict(getattr(value, "params", None) or {}), blobs, depth + 1),
                }
            if isinstance(value, keras.Variable):
                return {"t": "nd", "b": self._npy(np, np.asarray(keras.ops.convert_to_numpy(value)), blobs)}
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            if isinstance(value, tf.data.Dataset):
                batches = [self.encode(element, blobs, depth + 1) for element in value.as_numpy_iterator()]
                return {"t": "dataset", "v": batches}
            if isinstance(value, (tf.Tensor, tf.Variable)) and hasattr(value, "numpy"):
                return {"t": "nd", "b": self._npy(np, np.asarray(value.numpy()), blobs)}
        if not self.allow_references:
            raise Unsendable(f"a value of type {type(value).__name__} cannot be sent")
        if self.lend_callables_only and not callable(value):
            raise Unsendable(
                f"a {type(value).__name__} cannot be handed to the student's code: only data (numbers, strings, "
                "containers, arrays, Keras models) and functions to call with data cross to it"
            )
        kind = "callable" if callable(value) else "object"
        try:
            text = object.__repr__(value)
        except Exception:  # noqa: BLE001
            text = "?"
        return {"t": "ref", "id": self.export(value), "kind": kind, "type": type(value).__name__, "repr": text}

    def _value_or_reference(self, wrapped: ValueOrReference, blobs: list[bytes], depth: int):
        start, budget = len(blobs), wrapped.budget
        try:
            text, data = rough_size(wrapped.value, budget.header, budget.blob)
            if text > budget.header or data > budget.blob:
                raise Unsendable("too large to send by value")
            node = self.encode(wrapped.value, blobs, depth + 1)
            blob_bytes = sum(len(b) for b in blobs[start:])
            header_bytes = len(json.dumps(node, allow_nan=False))
            if blob_bytes > budget.blob or header_bytes > budget.header:
                raise Unsendable("too large to send by value")
            budget.blob -= blob_bytes
            budget.header -= header_bytes
            return node
        except (Exception, MemoryError):  # noqa: BLE001 (whatever fails by value goes by reference)
            del blobs[start:]
            if not self.allow_references:
                raise
            text = type(wrapped.value).__name__
            kind = "callable" if callable(wrapped.value) else "object"
            return {"t": "ref", "id": self.export(wrapped.value), "kind": kind, "type": text, "repr": f"<{text}>"}

    @staticmethod
    def _npy(np, array, blobs: list[bytes]) -> int:
        if array.dtype.hasobject:
            raise Unsendable("a NumPy array of Python objects (dtype object) cannot be sent; use a numeric array")
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        blobs.append(buffer.getvalue())
        return len(blobs) - 1

    def _encode_layer(self, keras, layer, blobs: list[bytes]) -> dict:
        import numpy as np

        config = keras.saving.serialize_keras_object(layer)
        weights = [self._npy(np, np.asarray(keras.ops.convert_to_numpy(w)), blobs) for w in layer.weights]
        optimizer = getattr(layer, "optimizer", None)
        steps = None
        if optimizer is not None and getattr(layer, "compiled", False):
            steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
        return {
            "t": "keras",
            "config": json.loads(json.dumps(config, default=_json_default)),
            "w": weights,
            "trainable": [bool(sub.trainable) for sub in flatten_layers(layer)],
            "steps": steps,
        }

    def encode_call(self, args: tuple, kwargs: dict, blobs: list[bytes]) -> dict:
        """Arguments of a call. A Keras layer that is part of another Keras argument travels as a path into it,
        so that the callee sees one object graph (``fine_tune(model, base)`` freezes the base inside the model)."""
        values = list(args) + list(kwargs.values())
        containers = {}
        for i, value in enumerate(values):
            if _is_keras_layer(value):
                containers[i] = flatten_layers(value)
        encoded = []
        for i, value in enumerate(values):
            parent = next(
                (
                    (j, index)
                    for j, layers in containers.items()
                    if j != i and _is_keras_layer(value)
                    for index, sub in enumerate(layers)
                    if index > 0 and sub is value
                ),
                None,
            )
            if parent is not None:
                encoded.append({"t": "sublayer", "arg": parent[0], "index": parent[1]})
            else:
                encoded.append(self.encode(value, blobs))
        return {"args": encoded[: len(args)], "kwargs": dict(zip(kwargs, encoded[len(args) :]))}

    # -------------------------------------------------------------------------------------- decoding
    def decode(self, node, blobs: list[bytes]):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict):
            raise WireError(f"a malformed value ({type(node).__name__})")
        tag = node.get("t")
        if self.plain and tag not in PLAIN_TAGS:
            raise WireError(f"a value of kind {str(tag)[:40]!r} where only plain data is expected")
        if tag == "int":
            return int(node["v"])
        if tag == "float":
            return float(node["v"])
        if tag == "complex":
            return complex(self.decode(node["re"], blobs), self.decode(node["im"], blobs))
        if tag == "bytes":
            return blobs[node["b"]]
        if tag in ("tuple", "list", "set", "frozenset"):
            items = [self.decode(item, blobs) for item in node["v"]]
            return {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "dict":
            return {self.decode(k, blobs): self.decode(v, blobs) for k, v in zip(node["k"], node["v"])}
        if tag in ("nd", "npscalar"):
            import numpy as np

            array = np.load(io.BytesIO(blobs[node["b"]]), allow_pickle=False)
            return array[()] if tag == "npscalar" else array
        if tag == "keras":
            try:
                return self._decode_layer(node, blobs)
            except (WireError, KeyError, IndexError, TypeError) as err:
                raise WireError(f"a malformed Keras object ({type(err).__name__}: {err})") from None
            except Exception as err:  # noqa: BLE001 (Keras refused the config: the call fails, not the wire)
                raise Undecodable(
                    f"a Keras object that cannot be rebuilt outside your notebook ({type(err).__name__}: {err}); "
                    "use only Keras' own layers (a custom layer class or a Lambda layer cannot be graded)"
                ) from None
        if tag == "history":
            import keras

            history = keras.callbacks.History()
            history.epoch = self.decode(node["epoch"], blobs)
            history.history = self.decode(node["history"], blobs)
            history.params = self.decode(node["params"], blobs)
            return history
        if tag == "dataset":
            import tensorflow as tf

            batches = [self.decode(item, blobs) for item in node["v"]]
            if not batches:
                return tf.data.Dataset.from_tensor_slices([])
            dataset = tf.data.Dataset.from_tensors(batches[0])
            for batch in batches[1:]:
                dataset = dataset.concatenate(tf.data.Dataset.from_tensors(batch))
            return dataset
        if tag == "ref":
            return self.make_proxy(
                int(node["id"]), str(node.get("kind"))[:20], str(node.get("type"))[:100], str(node["repr"])[:200]
            )
        if tag == "yours":
            key = int(node["id"])
            if key not in self.exports:
                raise WireError(f"a reference to an unknown object ({key})")
            return self.exports[key]
        raise WireError(f"an unknown kind of value ({tag!r})")

    def _decode_layer(self, node, blobs):
        import keras
        import numpy as np

        _import_course_layers(node["config"])
        layer = keras.saving.deserialize_keras_object(node["config"], safe_mode=True)
        weights = [np.load(io.BytesIO(blobs[i]), allow_pickle=False) for i in node["w"]]
        if len(weights) != len(layer.weights):
            raise WireError(f"a Keras {type(layer).__name__} with {len(weights)} weights for {len(layer.weights)}")
        for variable, value in zip(layer.weights, weights):
            variable.assign(value)
        for sub, flag in zip(flatten_layers(layer), node.get("trainable", [])):
            sub.trainable = bool(flag)
        if node.get("steps") is not None and getattr(layer, "optimizer", None) is not None:
            layer.optimizer.iterations.assign(int(node["steps"]))
        return layer

    def decode_call(self, node: dict, blobs: list[bytes]) -> tuple[list, dict]:
        raw = list(node["args"]) + list(node["kwargs"].values())
        values: list = [None] * len(raw)
        for i, item in enumerate(raw):
            if not (isinstance(item, dict) and item.get("t") == "sublayer"):
                values[i] = self.decode(item, blobs)
        for i, item in enumerate(raw):
            if isinstance(item, dict) and item.get("t") == "sublayer":
                values[i] = flatten_layers(values[int(item["arg"])])[int(item["index"])]
        n = len(node["args"])
        return values[:n], dict(zip(node["kwargs"], values[n:]))


COURSE_LAYER_MODULES = ("cnnbook.counting",)  # modules of registered Keras layers a config may name


def _import_course_layers(config, depth: int = 0) -> None:
    """Import the course's own module of a registered Keras class that a config names (``cnnbook>ImageCounter``),
    so that it deserializes; no other module is imported on a config's say-so."""
    if depth > 60:
        return
    if isinstance(config, dict):
        module = config.get("module")
        if isinstance(module, str) and module in COURSE_LAYER_MODULES and module not in sys.modules:
            importlib.import_module(module)
        for value in config.values():
            _import_course_layers(value, depth + 1)
    elif isinstance(config, list):
        for value in config:
            _import_course_layers(value, depth + 1)


def rough_size(value, json_limit: int, blob_limit: int) -> tuple[int, int]:
    """The bytes ``value`` takes on the wire as (JSON header bytes, blob bytes), estimated from below but honestly:
    text by its length and every number, ``None`` and flag by the bytes its JSON takes (a list of 12 million ints
    is about 140 MB of JSON, not 0), NumPy arrays by ``nbytes``, through containers at any depth. Stops counting
    once past either limit."""
    text, data, stack, end = 0, 0, [iter((value,))], object()
    while stack and text <= json_limit and data <= blob_limit:
        item = next(stack[-1], end)
        if item is end:
            stack.pop()
            continue
        kind = type(item)
        if item is None or kind is bool:
            text += 5
        elif kind is int or kind is float:
            text += 12
        elif isinstance(item, str):
            text += len(item) + 2
        elif isinstance(item, (bytes, bytearray)):
            data += len(item)
        elif kind.__module__.startswith("numpy") and isinstance(getattr(item, "nbytes", None), int):
            data += int(item.nbytes)
        elif isinstance(item, (list, tuple, set, frozenset)):
            text += 2 + len(item)
            stack.append(tuple.__iter__(item) if isinstance(item, tuple) else iter(item))
        elif isinstance(item, dict):
            text += 2 + 2 * len(item)
            stack.append(iter(list(dict.values(item))))
            stack.append(iter(list(dict.keys(item))))
        else:
            text += 8
    return text, data


def _json_default(value):
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic):
        return value.item()
    if np is not None and isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} in a Keras config")


def copy_back_targets(args: list) -> list[int]:
    """Which positional-or-keyword argument values are sent back after a call, for in-place changes: NumPy arrays
    and top-level Keras layers and models."""
    np = sys.modules.get("numpy")
    out = []
    for i, value in enumerate(args):
        if np is not None and type(value) is np.ndarray or _is_keras_layer(value):
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
    keras = _keras()
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
        if arg is value and (_is_keras_layer(arg) or type(arg).__module__.startswith("numpy")):
            out.append([i, -1])
    if out or not _is_keras_layer(value):
        return out
    layers = list(getattr(value, "layers", []) or [])
    for i, arg in enumerate(args):
        if _is_keras_layer(arg):
            index = next((k for k, layer in enumerate(layers) if layer is arg), None)
            if index is not None:
                out.append([i, index])
    return out


def apply_aliases(value, args: list, alias: list):
    """The caller's side of :func:`return_aliases`: the caller's own argument object where the callee returned
    its argument, or the returned model rewired around the caller's own layers, so identity checks hold
    (``base in model.layers``) and the caller's layer records the call (``base._inbound_nodes``)."""
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
    if not grafts or not _is_keras_layer(value):
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
    keras = _keras()
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


class Proxy:
    """The local stand-in for an object that lives on the other side. Calls, attribute reads, indexing and len()
    become requests; what comes back is data. It defines no comparisons of its own: two proxies are equal only if
    they are the same proxy."""

    __slots__ = ("_codec", "_id", "_kind", "_type", "_repr", "_channel", "__weakref__")

    def __init__(self, channel, codec, key, kind, type_name, text):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_codec", codec)
        object.__setattr__(self, "_id", key)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_repr", text)

    def __call__(self, *args, **kwargs):
        return self._channel.remote("call", self._id, args=args, kwargs=kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._channel.remote("getattr", self._id, name=name)

    def __getitem__(self, key):
        return self._channel.remote("getitem", self._id, args=(key,))

    def __len__(self):
        return int(self._channel.remote("len", self._id))

    def __repr__(self):
        return f"<{self._type} from the student's code>"


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

    The student's side (``sandbox_runner``) answers call, getattr, getitem and len on what it lent, plus its
    ``extra_ops`` (run_cell, assign, seed). The grader's side is built with ``grader=True``: it lends nothing but
    the functions a test passes to the student's code, and answers nothing but ``call`` on those, with data in and
    data out (no attribute, item or length requests, no references handed out in a reply), at most
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
