"""How values cross the wire between the grader and a student's sandboxed process: by value, as plain data.

Values travel **by value** and decode into plain types on the receiving side, built by the receiver's own code:

* ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``; tuples, lists, sets and dicts of values
  (subclasses are reduced to their base type, so an ``int`` whose ``__eq__`` always says yes arrives as an int);
* NumPy arrays and scalars as ``.npy`` bytes, read back with ``allow_pickle=False`` (object arrays are refused);
  TensorFlow tensors and Keras variables arrive as NumPy arrays;
* Keras models and layers as their JSON config and weights, rebuilt with ``safe_mode=True`` (no Lambda code, no
  arbitrary classes); compile settings and the optimizer's step count come along; a Keras ``History`` as its
  ``epoch``, ``history`` and ``params``; a ``tf.data.Dataset`` as its batches;
* anything else, functions included, as a *reference*: the receiver gets a proxy (``wire.Proxy``) whose calls are
  requests back to the owner, answered again by value.

Nothing is ever unpickled, so the student's process cannot hand the grader an object that runs its code. Both
sides import this module (the sandbox gets the package folder read-only); only the standard library is imported
at the top, so the runner can start before NumPy.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import sys


class WireError(Exception):
    """The other side sent something malformed or too large, or went away."""


class Undecodable(Exception):
    """A well-formed value this side cannot rebuild (a Keras model whose config names a class it does not know):
    the call that returned it fails, and the connection goes on."""


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


# ---------------------------------------------------------------------------------------------- values
def keras_module():
    return sys.modules.get("keras")


def is_keras_layer(value) -> bool:
    keras = keras_module()
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
        keras = keras_module()
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
            if is_keras_layer(value):
                containers[i] = flatten_layers(value)
        encoded = []
        for i, value in enumerate(values):
            parent = next(
                (
                    (j, index)
                    for j, layers in containers.items()
                    if j != i and is_keras_layer(value)
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
