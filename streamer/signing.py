"""Signed payloads: how a model or a partition's state travels through Kafka and back.

Checkpoints (the changelog topic) and model updates (the model-update topic) carry the same
thing: a Python object pickled, compressed, hashed and signed. This module is the one place
that turns objects into such payloads and back:

* :func:`dumps` pickles (protocol 5, on a thread with a deep stack: River's trees hold long
  linked structures that overflow the default recursion limit) and compresses with zlib.
* :class:`Signer` computes an HMAC-SHA256 over a canonical header and the payload, with a key
  from the settings (``security.signing_key``). Its ``key_id`` (a hash of the key, not the key)
  travels with each payload, so a refusal can say "signed with another key".
* :func:`loads` is only ever called on a payload whose signature and SHA-256 were verified
  first; it decompresses with a size cap (no zip bombs) and unpickles with
  :class:`RestrictedUnpickler`, which resolves only the classes a model needs (River, NumPy,
  streamer's own state, a few standard-library containers) and refuses everything else
  (``os.system``, ``subprocess``, ``builtins.eval``…), so even a payload signed with a leaked
  key cannot name arbitrary code.

Examples
--------
>>> signer = Signer(b"k" * 32)
>>> payload = dumps({"weights": [1.0, 2.0]})
>>> header = {"kind": "example", "version": 1}
>>> signature = signer.sign(header, payload)
>>> signer.verify(header, payload, signature)
True
>>> signer.verify({**header, "version": 2}, payload, signature)
False
>>> loads(payload)
{'weights': [1.0, 2.0]}
>>> import pickle, os
>>> loads(zlib.compress(pickle.dumps(os.system)))
Traceback (most recent call last):
...
streamer.errors.PayloadError: refused to unpickle posix.system: not a class a model needs ...
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
import sys
import threading
import types
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from streamer.errors import PayloadError

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "RestrictedUnpickler",
    "Signer",
    "dumps",
    "loads",
    "sha256",
    "split",
]

#: Largest decompressed payload accepted by :func:`loads` unless told otherwise.
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 30

# Deep structures (a River EBST splitter fed a trending series is a linked list) need more
# than Python's default recursion limit to pickle; the pickling thread gets a stack to match.
_RECURSION_LIMIT = 200_000
_STACK_BYTES = 512 * 1024 * 1024
_deep_lock = threading.Lock()


def _deep(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a thread with a large stack and a high recursion limit; return its result."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    with _deep_lock:
        old_stack = threading.stack_size(_STACK_BYTES)
        old_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old_limit, _RECURSION_LIMIT))
        try:
            thread = threading.Thread(target=target, name="streamer-pickle")
            thread.start()
            thread.join()
        finally:
            sys.setrecursionlimit(old_limit)
            threading.stack_size(old_stack)
    if error:
        raise error[0]
    return result[0]


def dumps(obj: Any, *, level: int = 6) -> bytes:
    """Pickle (protocol 5) and zlib-compress ``obj``."""
    raw: bytes = _deep(lambda: pickle.dumps(obj, protocol=5))
    return zlib.compress(raw, level)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(data: bytes, size: int) -> list[bytes]:
    """``data`` in chunks of at most ``size`` bytes (one empty chunk for empty data)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


class Signer:
    """HMAC-SHA256 signatures over a header (any JSON-able mapping) and a payload.

    The header is serialised canonically (sorted keys, no spaces), so producer and verifier
    agree byte for byte whatever order the fields were built in.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a signing key needs at least 16 bytes")
        self._key = key
        #: Identifies the key without revealing it (first 16 hex digits of a hash of it).
        self.key_id = hashlib.sha256(b"streamer-key-id\0" + key).hexdigest()[:16]

    @staticmethod
    def canonical(header: Mapping[str, Any]) -> bytes:
        return orjson.dumps(header, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)

    def sign(self, header: Mapping[str, Any], payload: bytes) -> str:
        mac = hmac.new(self._key, self.canonical(header), hashlib.sha256)
        mac.update(b"\0")
        mac.update(payload)
        return mac.hexdigest()

    def verify(self, header: Mapping[str, Any], payload: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(header, payload), str(signature))


# -- the restricted unpickler ---------------------------------------------------------------

# Module prefixes whose *classes* a model, its metrics or streamer's state may contain.
_CLASS_MODULES = (
    "river.",
    "numpy",
    "streamer.",
    "collections",
    "sortedcontainers",
    "statistics",
    "numbers",
    "random",
    "datetime",
    "decimal",
    "fractions",
    "array",
    "functools",
    "operator",
)
# Modules never trusted, even for classes (file access, compilers, networking).
_DENIED_MODULES = (
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
    "numpy.ctypeslib",
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "numpy.lib.format",
    "numpy.lib._datasource",
    "river.datasets",
    "river.stream",
    "river.api",
    "streamer.cli",
    "streamer.broker",
    "streamer.kafka",
    "streamer.metrics",
    "streamer.demo",
    "streamer.produce",
    "streamer.worker",
)
_DENIED_NAMES = {
    ("numpy", "memmap"),
    ("numpy", "load"),
    ("numpy", "save"),
    ("numpy", "fromfile"),
    # Callables that fetch attributes or call methods by name reach anything.
    ("operator", "attrgetter"),
    ("operator", "methodcaller"),
}
# Plain functions a pickled model legitimately names (reconstructors, default factories).
_FUNCTIONS = {
    ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("copy", "deepcopy"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("streamer.drift.window", "_one_value"),
}
_BUILTINS = {
    "set",
    "frozenset",
    "dict",
    "list",
    "tuple",
    "bytes",
    "bytearray",
    "complex",
    "float",
    "int",
    "bool",
    "str",
    "slice",
    "range",
    "object",
}
# River objects may hold bound methods (an EBST node keeps one): pickle stores them as
# getattr(obj, name). Only methods of River and streamer objects, never dunder names.
_METHOD_OWNERS = ("river.", "streamer.")


def _safe_getattr(obj: Any, name: str) -> Any:
    owner = type(obj).__module__ + "."
    if (
        not isinstance(name, str)
        or name.startswith("__")
        or not owner.startswith(_METHOD_OWNERS)
        or owner.startswith(tuple(m + "." for m in _DENIED_MODULES))
    ):
        raise PayloadError(
            f"refused to unpickle getattr({type(obj).__name__}, {name!r}): "
            "only methods of River and streamer objects"
        )
    attr = getattr(obj, name)
    if getattr(attr, "__self__", None) is not obj:
        raise PayloadError(f"refused to unpickle {type(obj).__name__}.{name}: not a bound method")
    return attr


def _allowed_module(module: str) -> bool:
    def under(prefixes: tuple[str, ...]) -> bool:
        return any(
            module == p.rstrip(".") or module.startswith(p.rstrip(".") + ".") for p in prefixes
        )

    return under(_CLASS_MODULES) and not under(_DENIED_MODULES)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only what River models and streamer's state are made of.

    Classes from River, NumPy, streamer's state modules, ``collections``, ``random`` and a few
    other standard containers; the handful of reconstructor functions NumPy and ``copyreg``
    pickle with; ``getattr`` only to rebuild bound methods of River and streamer objects.
    Everything else raises :class:`~streamer.errors.PayloadError` before it is imported.

    ``trusted`` adds module prefixes whose classes are accepted too: the modules of a
    ``module:factory`` model (``security.trusted_modules``).
    """

    def __init__(self, file: Any, *, trusted: tuple[str, ...] = ()) -> None:
        super().__init__(file)
        self._trusted = tuple(t.rstrip(".") for t in trusted if t)

    def _is_trusted(self, module: str) -> bool:
        return any(module == t or module.startswith(t + ".") for t in self._trusted)

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins":
            if name in _BUILTINS:
                return super().find_class(module, name)
            if name == "getattr":
                return _safe_getattr
        elif (module, name) in _FUNCTIONS:
            return super().find_class(module, name)
        elif (_allowed_module(module) or self._is_trusted(module)) and (
            module.split(".")[0],
            name,
        ) not in _DENIED_NAMES:
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
            # River keeps some of its own functions as attributes (a tree's splitter holds
            # the estimator update it uses), pickled by qualified name.
            if (
                isinstance(found, types.FunctionType | types.BuiltinFunctionType)
                and (module.startswith("river.") or self._is_trusted(module))
                and getattr(found, "__module__", None) == module
            ):
                return found
        raise PayloadError(
            f"refused to unpickle {module}.{name}: not a class a model needs (a module:factory "
            "model's own modules go in security.trusted_modules)"
        )


def loads(
    payload: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, trusted: tuple[str, ...] = ()
) -> Any:
    """Decompress and unpickle a *verified* payload with :class:`RestrictedUnpickler`.

    Raises
    ------
    PayloadError
        When it does not decompress, inflates beyond ``max_bytes``, names a refused global or
        does not unpickle.
    """
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, max_bytes)
    except zlib.error as exc:
        raise PayloadError(f"payload does not decompress: {exc}") from exc
    if inflater.unconsumed_tail:
        raise PayloadError(f"payload inflates beyond {max_bytes} bytes")

    def load() -> Any:
        return RestrictedUnpickler(io.BytesIO(raw), trusted=trusted).load()

    try:
        return _deep(load)
    except PayloadError:
        raise
    except Exception as exc:
        raise PayloadError(f"payload does not unpickle: {type(exc).__name__}: {exc}") from exc
