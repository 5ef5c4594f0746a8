"""Read PyTorch ``.pth`` checkpoints into NumPy arrays, without importing torch.

API
---
``load_pth(path, key=None, strip_prefix="module.")`` -> ``dict[str, np.ndarray]``: the state
dict of a checkpoint, insertion-ordered (see ``extract_state_dict`` for nested checkpoints;
``strip_prefix`` is removed when *every* key starts with it, as after ``nn.DataParallel``).
``read_pth(path)``: the whole saved object, tensors replaced by arrays.
``extract_state_dict(obj, key=None)``: the name -> array mapping inside such an object.

Formats read
------------
Zip (``torch.save`` default since 1.6): an uncompressed zip whose entries share one folder
``<prefix>/`` (``archive/`` in recent releases, the file stem in older ones)::

    <prefix>/data.pkl       pickle (protocol 2) of the saved object
    <prefix>/data/<key>     raw bytes of one storage
    <prefix>/byteorder      "little" or "big"; absent in old files, which are little-endian
    <prefix>/version, .format_version, .storage_alignment, .data/serialization_id  (ignored)

Legacy (``_use_new_zipfile_serialization=False``): pickles back to back - the magic number
0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict, the saved object, the
sorted list of storage keys - then, for each key in that order, an int64 little-endian
element count and count * element_size bytes of little-endian data.

The object pickle names storages by persistent ids, ``('storage', storage_type, key,
location, numel)`` plus, in legacy files, ``view_metadata`` (None, or ``(view_key, offset,
numel)``: a slice of the root storage). ``storage_type`` is a typed class such as
``torch.FloatStorage`` (numel counts elements) or ``torch.UntypedStorage`` (bytes);
``location`` ("cpu", "cuda:0") is ignored. Tensors come from ``torch._utils``:
``_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])``,
``_rebuild_tensor_v3(...same..., dtype[, metadata])`` (untyped storage plus a dtype global
such as ``torch.uint16``) or ``_rebuild_tensor(storage, offset, size, stride)``, possibly
wrapped in ``_rebuild_parameter[_with_state]`` or ``torch._tensor._rebuild_from_type_v2``.
Offset, size and stride count elements of the tensor's dtype.

Results: each tensor becomes its own C-contiguous, native-endian array (views and shared
storages are copied out); bfloat16 becomes float32; dicts and OrderedDicts become plain
dicts; other leaves (ints, floats, strings) are returned as they are.

Safety: the unpickler resolves only the globals in ``_GLOBALS`` (plain containers,
``torch.Size``, storage classes, dtypes and the rebuild functions above, all mapped to local
stand-ins). Any other global raises ``pickle.UnpicklingError`` before anything is called,
so a checkpoint cannot run code; nothing can be set on a global either (a BUILD onto one is
refused), so one file cannot change how the next one loads.

Bounds: nothing is allocated from a size the file merely declares. Each pickle is scanned
first (:mod:`pickletools`): every counted argument must lie within the stream and memo
indices within its opcode count. A storage is read only from bytes the file really holds:
an uncompressed zip record within the file, a legacy storage within what remains of it; a
compressed zip record (torch.save never writes one) inflates to at most
``max(64 MiB, 16 x file size)`` in all. A tensor is expanded only after its geometry is
checked: it must fit its storage, a view larger than its storage (stride 0, as from
``expand``) and all tensors together may produce at most ``4 x`` the storage bytes read
plus 64 MiB, and everything stays under ``max_bytes`` (:data:`MAX_BYTES`, 4 GiB).
Not read: TorchScript archives, quantized, sparse and float8 tensors, the pre-1.0 tar
format, numpy objects inside checkpoints.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["MAX_BYTES", "extract_state_dict", "read_pth", "load_pth"]

MAX_BYTES = 4 * 2**30
"""The most bytes one load may allocate for storages and arrays (``max_bytes=``)."""
_SLACK = 64 * 2**20  # bytes any file may inflate or expand to, whatever its size
_INFLATE_RATIO = 16  # compressed records: at most this many times the file size, inflated
_EXPAND_RATIO = 4  # arrays: at most this many times the storage bytes read (+ _SLACK)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
# torch dtype name -> numpy type code; bfloat16 is read as uint16 and widened to float32
_DTYPES = {"float32": "f4", "float64": "f8", "float16": "f2", "bfloat16": "bf16",
           "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1",
           "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "?",
           "complex64": "c8", "complex128": "c16"}
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
            "int": "int32", "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}
_STORAGES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
             "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
             "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
             "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8"}
_UNSUPPORTED = re.compile(r"\w*Storage|float8_\w+|float4_\w+|qu?int\w*|bits\w+|complex32|chalf")
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "params")


class _Rejected(pickle.UnpicklingError):
    pass


class _Frozen:
    """Refuses pickle's BUILD: the allow-listed globals are shared by every load."""

    __slots__ = ()

    def __setstate__(self, state):
        raise _Rejected("refusing to set state on an allowed global (a BUILD onto "
                        f"{self!r:.40}): a checkpoint may only build its own objects")


class _Global(_Frozen):
    """An allow-listed function, callable but closed to changes."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        object.__setattr__(self, "fn", fn)

    def __setattr__(self, name, value):
        raise _Rejected(f"refusing to set {name} on an allowed global")

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self):
        return f"<allowed global {self.fn.__name__}>"


class _DType(_Frozen, str):
    """A torch dtype, named as in ``_DTYPES`` (from a storage class or a dtype global)."""

    __slots__ = ()

    def numpy(self, order: str = "=") -> np.dtype:
        code = _DTYPES[self]
        return np.dtype("u2" if code == "bf16" else code).newbyteorder(order)


class _Storage:
    def __init__(self, key, dtype, nbytes, base=None, start=0):
        self.key, self.dtype, self.nbytes, self.base, self.start = key, dtype, nbytes, base, start
        self.raw = None  # np.uint8 array, filled once the storage bytes are read

    def data(self):
        if self.base is None:
            return self.raw
        raw = self.base.data()
        return None if raw is None else raw[self.start:self.start + self.nbytes]


class _Tensor:
    def __init__(self, storage, offset, size, stride, dtype, metadata=None):
        if not isinstance(storage, _Storage) or not isinstance(dtype, _DType):
            raise _Rejected("tensor record without a storage and dtype")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.dtype, self.metadata = dtype, metadata if isinstance(metadata, dict) else {}


def _rebuild_tensor(storage, offset, size, stride):
    return _Tensor(storage, offset, size, stride, getattr(storage, "dtype", None))


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    return _Tensor(storage, offset, size, stride, getattr(storage, "dtype", None), metadata)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype,
                       metadata=None):
    return _Tensor(storage, offset, size, stride, dtype, metadata)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


_TENSOR_REBUILDS = {f.__name__: _Global(f)
                    for f in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3)}


def _rebuild_from_type(func, new_type, args, state=None):
    if not any(func is g for g in _TENSOR_REBUILDS.values()):
        raise _Rejected("_rebuild_from_type_v2 must wrap a tensor rebuild function")
    return func(*args)


_GLOBALS = {("collections", "OrderedDict"): collections.OrderedDict, ("torch", "Size"): tuple,
            **{("torch._utils", n): g for n, g in _TENSOR_REBUILDS.items()},
            ("torch._utils", "_rebuild_parameter"): _Global(_rebuild_parameter),
            ("torch._utils", "_rebuild_parameter_with_state"): _Global(_rebuild_parameter),
            ("torch._tensor", "_rebuild_from_type_v2"): _Global(_rebuild_from_type),
            ("torch._tensor", "_rebuild_from_type"): _Global(_rebuild_from_type),
            ("torch", "Tensor"): "torch.Tensor",  # new_type of _rebuild_from_type_v2
            ("torch.nn.parameter", "Parameter"): "torch.nn.Parameter"}
_GLOBALS.update({("builtins", f.__name__): f for f in (dict, list, tuple, set, frozenset)})
_GLOBALS.update({("torch", n): _DType(d) for n, d in _STORAGES.items()})
_GLOBALS["torch.storage", "UntypedStorage"] = _DType("uint8")
_GLOBALS.update({("torch", n): _DType(_ALIASES.get(n, n)) for n in (*_DTYPES, *_ALIASES)})


class _Unpickler(pickle.Unpickler):
    """Resolves only ``_GLOBALS``; turns storage persistent ids into ``_Storage`` records."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path, self.storages, self.views = path, {}, {}

    def find_class(self, module, name):
        module = {"__builtin__": "builtins", "torch.tensor": "torch._tensor"}.get(module, module)
        if (module, name) in _GLOBALS:
            return _GLOBALS[module, name]
        if module == "torch" and _UNSUPPORTED.fullmatch(name):
            raise ValueError(f"{self.path}: unsupported storage dtype torch.{name} "
                             f"(supported: {', '.join(_DTYPES)})")
        raise _Rejected(f"refusing to load global '{module}.{name}': only "
                       "tensors, storages and plain containers are allowed in a checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and _text(pid[0]) == "storage"
                and isinstance(pid[1], _DType)):
            raise _Rejected(f"unsupported persistent id {pid!r:.100}")
        dtype, key, numel = pid[1], _text(pid[2]), int(pid[4])
        size = dtype.numpy().itemsize
        root = self.storages.setdefault(key, _Storage(key, dtype, numel * size))
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return root
        vkey, offset, vnumel = _text(view[0]), int(view[1]), int(view[2])
        return self.views.setdefault(
            vkey, _Storage(vkey, root.dtype, vnumel * size, root, offset * size))


def _text(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


class _Capped:
    """``read(n)`` of a file that never asks for more than what is left of it (a buffered
    file allocates ``n`` bytes before it reads)."""

    def __init__(self, f, end):
        self.f, self.end = f, end

    def read(self, n=-1):
        left = max(self.end - self.f.tell(), 0)
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readline(self):
        return self.f.readline()

    def tell(self):
        return self.f.tell()


def _scan(f, path, what):
    """Walk one pickle's opcodes without building anything: every counted argument must lie
    within the stream (pickletools reads it) and memo indices and frames within bounds, so
    the unpickler never allocates from a size the file only declares. Rewinds ``f``."""
    start = f.tell()
    size = f.seek(0, io.SEEK_END)
    f.seek(start)
    n = 0
    try:
        with warnings.catch_warnings():  # a malformed STRING argument warns before it fails
            warnings.simplefilter("ignore", DeprecationWarning)
            for op, arg, pos in pickletools.genops(_Capped(f, size)):
                n += 1
                if op.name in _MEMO_OPS and not 0 <= arg <= n:
                    raise ValueError(f"memo index {arg} at byte {pos} is out of range")
                if op.name == "FRAME" and arg > size - f.tell():
                    raise ValueError(f"frame of {arg} bytes at byte {pos} exceeds the stream")
    except ValueError as e:
        raise ValueError(f"{path}: corrupt {what} pickle ({e})") from None
    finally:
        f.seek(start)


def _unpickle(f, path, what):
    _scan(f, path, what)
    up = _Unpickler(f, path)
    try:
        return up, up.load()
    except _Rejected as e:
        raise _Rejected(f"{path}: {e}") from None
    except ValueError as e:
        if str(e).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: corrupt {what} pickle ({e})") from None
    except (EOFError, pickle.UnpicklingError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, RecursionError) as e:  # truncated or malformed pickle stream
        raise ValueError(f"{path}: corrupt {what} pickle ({type(e).__name__}: {e})") from None


class _Budget:
    """What one load may still allocate (see the module docstring's Bounds)."""

    def __init__(self, file_size, max_bytes):
        self.file_size, self.max_bytes = file_size, max_bytes
        self.inflate = max(_SLACK, _INFLATE_RATIO * file_size)
        self.read = 0  # storage bytes read from the file
        self.total = 0  # bytes allocated in all (storages and arrays)
        self.arrays = 0

    def charge(self, nbytes, what, path):
        if self.total + nbytes > self.max_bytes:
            raise ValueError(f"{path}: {what} needs {nbytes} bytes, over max_bytes "
                             f"({self.max_bytes}) with the {self.total} already read")
        self.total += nbytes

    def charge_array(self, nbytes, what, path):
        limit = _EXPAND_RATIO * self.read + _SLACK
        if self.arrays + nbytes > limit:
            raise ValueError(f"{path}: {what} expands to {nbytes} bytes; the file's tensors "
                             f"may produce at most {limit} bytes from the {self.read} bytes "
                             "of storage it holds (a stride-0 or overlapping view?)")
        self.charge(nbytes, what, path)
        self.arrays += nbytes


def _read_member(zf, name, path, budget):
    """The bytes of record ``name``, within the file (stored) or the inflation budget."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ValueError(f"{path}: zip archive has no record '{name}'") from None
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size > budget.file_size:
            raise ValueError(f"{path}: record '{name}' declares {info.file_size} bytes, more "
                             f"than the whole file ({budget.file_size})")
    else:
        if info.file_size > budget.inflate:
            raise ValueError(f"{path}: compressed record '{name}' declares {info.file_size} "
                             f"bytes; at most {budget.inflate} more may be inflated from "
                             "this file (torch.save writes records uncompressed)")
        budget.inflate -= info.file_size
    budget.charge(info.file_size, f"record '{name}'", path)
    try:
        with zf.open(info) as fh:
            return fh.read(info.file_size)
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as e:
        raise ValueError(f"{path}: cannot read record '{name}': {e}") from None


def _read_zip(f, path, budget):
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError, ValueError) as e:
        raise ValueError(f"{path}: truncated or corrupt zip archive ({e})") from None
    with zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")), None)
        if pkl is None:
            raise ValueError(f"{path}: zip archive without <prefix>/data.pkl "
                             "(not written by torch.save)")
        prefix = pkl[: -len("data.pkl")]
        if prefix + "constants.pkl" in names:
            raise ValueError(f"{path}: TorchScript archive (torch.jit.save) is not supported")
        order = "<"
        if prefix + "byteorder" in names:
            mark = _read_member(zf, prefix + "byteorder", path, budget).decode("ascii",
                                                                                "replace")
            if mark not in ("little", "big"):
                raise ValueError(f"{path}: unknown byteorder {mark!r}")
            order = "<" if mark == "little" else ">"
        up, obj = _unpickle(io.BytesIO(_read_member(zf, pkl, path, budget)), path, pkl)
        for key, st in up.storages.items():
            name = f"{prefix}data/{key}"
            raw = _read_member(zf, name, path, budget)
            budget.read += len(raw)
            if len(raw) < st.nbytes:
                raise ValueError(f"{path}: storage '{name}' is truncated: expected {st.nbytes} "
                                 f"bytes, found {len(raw)}")
            st.raw = np.frombuffer(raw, np.uint8, st.nbytes)
    return obj, order


def _read_legacy(f, path, budget):
    try:
        magic = _unpickle(f, path, "magic number")[1]
    except _Rejected:
        raise
    except ValueError:
        magic = None
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise ValueError(f"{path}: not a PyTorch checkpoint "
                         "(neither a zip archive nor a legacy torch.save pickle)")
    version = _unpickle(f, path, "protocol version")[1]
    if version != _LEGACY_PROTOCOL:
        raise ValueError(f"{path}: unsupported legacy protocol version {version!r}")
    _unpickle(f, path, "sys_info")  # endianness and C type sizes of the writer; data is LE
    up, obj = _unpickle(f, path, "object")
    keys = _unpickle(f, path, "storage keys")[1]
    if not isinstance(keys, list):
        raise ValueError(  # noqa: TRY004 - a corrupt file, not a caller's type error
            f"{path}: corrupt storage keys pickle (got {type(keys).__name__})")
    for key in keys:
        key = _text(key)
        st = up.storages.get(key)
        if st is None:
            raise ValueError(f"{path}: storage '{key}' is listed but no tensor uses it")
        head = f.read(8)
        count = int.from_bytes(head, "little", signed=True) if len(head) == 8 else -1
        nbytes = count * st.dtype.numpy().itemsize
        left = budget.file_size - f.tell()
        if count >= 0 and nbytes <= left:
            budget.charge(nbytes, f"storage '{key}'", path)
            raw = f.read(nbytes)
            budget.read += len(raw)
        else:
            raw = head if count < 0 else b"x" * max(left, 0)  # the error below
        if count < 0 or len(raw) < nbytes:
            raise ValueError(f"{path}: storage '{key}' is truncated: expected "
                             f"{max(nbytes, 8)} bytes, found {len(raw)}")
        st.raw, st.nbytes = np.frombuffer(raw, np.uint8), nbytes
    return obj, "<"


def _to_array(t: _Tensor, path, order, budget):
    st, dt = t.storage, t.dtype.numpy(order)
    raw = st.data()
    if raw is None:
        raise ValueError(f"{path}: no data for storage '{st.key}'")
    size, stride, offset = tuple(map(int, t.size)), tuple(map(int, t.stride)), int(t.offset)
    if len(size) != len(stride) or len(size) > 32 or min((*size, *stride, offset)) < 0:
        raise ValueError(f"{path}: bad tensor geometry size={size} stride={stride}")
    n = raw.size // dt.itemsize
    need = 0 if 0 in size else offset + 1 + sum((s - 1) * k for s, k in zip(size, stride))
    if need > n:
        raise ValueError(f"{path}: tensor needs {need} elements of storage '{st.key}', "
                         f"which holds {n}")
    numel = math.prod(size)  # checked before anything is expanded
    out_bytes = numel * dt.itemsize * (2 if t.dtype == "bfloat16" else 1)
    budget.charge_array(out_bytes, f"tensor {size} of storage '{st.key}'", path)
    if need == 0:
        a = np.zeros(size, dt)
    else:
        elems = raw[: n * dt.itemsize].view(dt)[offset:]
        a = as_strided(elems, size, [k * dt.itemsize for k in stride], writeable=False)
    a = np.array(a, dtype=dt.newbyteorder("="), order="C")
    if t.dtype == "bfloat16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    if t.metadata.get("conj"):
        a = np.conj(a)
    if t.metadata.get("neg"):
        a = np.negative(a)
    return a


def _materialize(obj, path, order, memo, budget):
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, _Storage):
        obj = _Tensor(obj, 0, (obj.nbytes // obj.dtype.numpy().itemsize,), (1,), obj.dtype)
    if isinstance(obj, _Tensor):
        out = memo[id(obj)] = _to_array(obj, path, order, budget)
    elif isinstance(obj, Mapping):
        out = memo[id(obj)] = {}
        out.update((k, _materialize(v, path, order, memo, budget)) for k, v in obj.items())
    elif isinstance(obj, list):
        out = memo[id(obj)] = []
        out.extend(_materialize(v, path, order, memo, budget) for v in obj)
    elif isinstance(obj, tuple):
        out = tuple(_materialize(v, path, order, memo, budget) for v in obj)
    else:
        out = obj
    return out


def read_pth(path, max_bytes: int = MAX_BYTES) -> object:
    """Load the whole object saved by ``torch.save``, with every tensor as a NumPy array;
    at most ``max_bytes`` are allocated (see the module docstring's Bounds)."""
    path = os.fspath(path)
    with open(path, "rb") as f:  # FileNotFoundError names the path
        budget = _Budget(os.fstat(f.fileno()).st_size, max_bytes)
        is_zip = f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
        f.seek(0)
        obj, order = _read_zip(f, path, budget) if is_zip else _read_legacy(f, path, budget)
    try:
        return _materialize(obj, path, order, {}, budget)
    except RecursionError:
        raise ValueError(f"{path}: objects nested too deeply") from None


def _is_state_dict(obj) -> bool:
    return (isinstance(obj, Mapping) and all(isinstance(k, str) for k in obj)
            and any(isinstance(v, np.ndarray) for v in obj.values()))


def _find_state_dict(obj, depth=3):
    if not isinstance(obj, Mapping) or depth < 0:
        return None
    for k in _NESTED_KEYS:
        hit = _find_state_dict(obj.get(k), depth - 1)
        if hit is not None:
            return hit
    if _is_state_dict(obj):
        return obj
    hits = [h for h in (_find_state_dict(v, depth - 1) for v in obj.values()) if h is not None]
    return hits[0] if len(hits) == 1 else None


def extract_state_dict(obj, key=None) -> dict:
    """Find the name -> array mapping in a loaded checkpoint.

    With ``key``, ``obj[key]`` must be that mapping. Otherwise the first match wins, searched
    down to three levels: the values under the usual keys (``state_dict``,
    ``model_state_dict``, ``model``, ``net``, ``network``, ``module``, ``params``, in that
    order), then ``obj`` itself (string keys, at least one array value), then the single
    value of ``obj`` under which such a mapping is found. Non-array values in it are kept.
    """
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            keys = list(obj) if isinstance(obj, Mapping) else type(obj).__name__
            raise KeyError(f"checkpoint has no key {key!r} (top level: {keys})")
        found = obj[key] if _is_state_dict(obj[key]) else None
    else:
        found = _find_state_dict(obj)
    if found is None:
        top = list(obj)[:20] if isinstance(obj, Mapping) else type(obj).__name__
        where = f"under key {key!r}" if key is not None else f"(top level: {top})"
        raise ValueError(f"no mapping of names to arrays found {where}; pass key=")
    return dict(found)


def load_pth(path, key=None, strip_prefix: str | None = "module.",
             max_bytes: int = MAX_BYTES) -> dict:
    """Load the state dict of a ``.pth`` checkpoint as ``{name: np.ndarray}`` (see module doc)."""
    obj = read_pth(path, max_bytes)
    try:
        sd = extract_state_dict(obj, key)
    except KeyError as e:
        raise KeyError(f"{os.fspath(path)}: {e.args[0]}") from None
    except ValueError as e:
        raise ValueError(f"{os.fspath(path)}: {e}") from None
    if strip_prefix and sd and all(k.startswith(strip_prefix) for k in sd):
        sd = {k[len(strip_prefix):]: v for k, v in sd.items()}
    return sd
