"""Reads a torch.save zip checkpoint without executing any pickled code.

torch.load (and plain pickle) call whatever global the pickle names, so a checkpoint can run
arbitrary code. This reader walks the pickle with Python's own opcode interpreter but decides
itself what every global means:

* a short allow-list is implemented here, in numpy: tensor rebuilds (_rebuild_tensor_v2 and
  the parameter wrappers), storage types, OrderedDict, set/frozenset, bytes (_codecs.encode);
* every other global becomes an inert stand-in class. Instances made from it through
  NEWOBJ/BUILD (how omegaconf's DictConfig, argparse.Namespace or fairseq meters pickle)
  just record their arguments and state;
* calling a stand-in (REDUCE, INST, OBJ) is how a pickle runs code (os.system, builtins.eval,
  subprocess.Popen...). It is refused with UnsafePickleError naming the global, except for
  globals of a few data-only libraries (numpy scalars, enums of omegaconf/fairseq configs),
  whose call is recorded, not performed.

Tensors are lazy: they remember their storage (a zip entry) and view, and only
``Tensor.numpy()`` reads bytes, so converting a 7B checkpoint never holds it all in memory.
"""
import _compat_pickle
import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from .safetensors_io import open_regular_file

__all__ = ["CheckpointError", "UnsafePickleError", "Tensor", "Inert", "load_checkpoint",
           "unpickle"]


class CheckpointError(Exception):
    """A checkpoint that cannot be read: not a torch zip, truncated, corrupt or unsafe."""


class UnsafePickleError(CheckpointError):
    """The pickle asked to call a global that could run code; nothing was called."""


# Storage class name -> (numpy dtype code, safetensors dtype). BFloat16 has no numpy dtype:
# its raw 16-bit patterns are kept as uint16 and tagged "BF16".
_STORAGE_TYPES = {
    "DoubleStorage": ("f8", "F64"),
    "FloatStorage": ("f4", "F32"),
    "HalfStorage": ("f2", "F16"),
    "BFloat16Storage": ("u2", "BF16"),
    "LongStorage": ("i8", "I64"),
    "IntStorage": ("i4", "I32"),
    "ShortStorage": ("i2", "I16"),
    "CharStorage": ("i1", "I8"),
    "ByteStorage": ("u1", "U8"),
    "BoolStorage": ("?", "BOOL"),
    "UntypedStorage": ("u1", "U8"),
}

# Libraries whose pickled calls only rebuild plain data (numpy scalars and dtypes, config
# enums, paths). Such a call is recorded as an Inert object instead of being performed.
_DATA_MODULES = {"numpy", "omegaconf", "fairseq", "argparse", "pathlib", "enum"}

# Upper bound on a tensor's element count, so a corrupted shape fails fast instead of
# allocating: 2^40 elements is far above any real checkpoint tensor.
_MAX_ELEMENTS = 1 << 40

# Tuples nested deeper than this are refused as they are built: hashing one (as a dict key)
# recurses in C once per level, and a million levels crash CPython. A state dict nests a few.
_MAX_TUPLE_DEPTH = 100

# Zip methods whose reader inflates only as far as it is asked to read.
_BOUNDED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

# A state dict's pickle holds names and shapes, not weights: a 7B checkpoint's is a few MB.
_MAX_PICKLE_BYTES = 256 << 20

# Work the unpickler may do: opcodes plus the elements that container calls (set, frozenset,
# OrderedDict of an existing object) copy, per pickle byte. A real pickle spends about one
# unit per byte; a small pickle that copies one large list over and over is refused.
_WORK_PER_BYTE = 16
_WORK_MINIMUM = 1 << 20


class StorageType:
    """What a pickle's `torch.FloatStorage` (etc.) global resolves to: a dtype tag."""

    __slots__ = ("name", "np_dtype", "st_dtype")

    def __init__(self, name):
        self.name = name
        self.np_dtype, self.st_dtype = _STORAGE_TYPES[name]

    def __repr__(self):
        return f"torch.{self.name}"


class Storage:
    """One storage of the checkpoint: zip entry data/<key>, `numel` elements of one dtype."""

    __slots__ = ("archive", "entry", "stype", "numel")

    def __init__(self, archive, entry, stype, numel):
        self.archive, self.entry, self.stype, self.numel = archive, entry, stype, numel


class Tensor:
    """A lazily read tensor: a strided view of a Storage."""

    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage, offset, shape, stride):
        if not isinstance(storage, Storage):
            raise CheckpointError(f"tensor rebuild got {type(storage).__name__}, not a storage")
        shape, stride = _int_tuple(shape, "size"), _int_tuple(stride, "stride")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise CheckpointError(f"tensor storage offset {offset!r} is not a non-negative int")
        if len(shape) != len(stride):
            raise CheckpointError(f"tensor size {shape} and stride {stride} differ in rank")
        numel = 1
        for s in shape:
            numel *= s
        if numel > _MAX_ELEMENTS:
            raise CheckpointError(f"tensor size {shape} is implausibly large")
        if numel:
            last = offset + sum((s - 1) * st for s, st in zip(shape, stride))
            if last >= storage.numel:
                raise CheckpointError(
                    f"tensor view (offset {offset}, size {shape}, stride {stride}) reads past "
                    f"its storage {storage.entry} of {storage.numel} elements")
        if numel > storage.numel:
            # Only a broadcast view (stride 0, overlapping strides) has more elements than its
            # storage; converting it would expand a few bytes into gigabytes.
            raise CheckpointError(
                f"tensor view (size {shape}, stride {stride}) has {numel} elements, more than its "
                f"storage {storage.entry} holds ({storage.numel}): a broadcast view, not a saved weight")
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    @property
    def dtype(self):
        """safetensors dtype tag: F32, F16, BF16, I64..."""
        return self.storage.stype.st_dtype

    def numpy(self):
        """The values as a C-contiguous array (BF16 as its uint16 bit patterns)."""
        return self.storage.archive.view(self)

    def __repr__(self):
        return f"Tensor({self.dtype}, {list(self.shape)})"


class Inert:
    """A stand-in object: the pickle's class name plus whatever it tried to set on it."""

    def __init__(self, qualname, args=(), state=None):
        self.qualname, self.args, self.state = qualname, args, state

    def __repr__(self):
        return f"<inert {self.qualname}>"


class _StandInMeta(type):
    # Calling a stand-in class is what REDUCE/INST/OBJ do: refuse unless its module only
    # rebuilds data, and even then record the call instead of making it.
    def __call__(cls, *args, **kwargs):
        if cls.qualname.split(".")[0] in _DATA_MODULES:
            return Inert(cls.qualname, args)
        raise UnsafePickleError(
            f"the checkpoint's pickle calls {cls.qualname}, which is not allowed "
            f"(it could run code); refusing to load it")


def _stand_in(module, name):
    cls = _StandInMeta(name, (), {})
    cls.qualname = f"{module}.{name}"
    return cls


def _int_tuple(value, what):
    if not isinstance(value, (tuple, list)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise CheckpointError(f"tensor {what} {value!r} is not a tuple of non-negative ints")
    return tuple(value)


# --- the allow-listed globals, implemented without torch ---------------------------------

def _rebuild_tensor(storage, storage_offset, size, stride):
    return Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, Tensor):
        raise CheckpointError(f"parameter rebuild got {type(data).__name__}, not a tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state=None):
    if func not in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter):
        raise UnsafePickleError(f"_rebuild_from_type_v2 with {func!r} is not allowed")
    if not isinstance(args, tuple):
        raise CheckpointError("_rebuild_from_type_v2 arguments are not a tuple")
    return func(*args)


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1").
    if type(text) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafePickleError("_codecs.encode is only allowed as the latin1 bytes idiom")
    return text.encode("latin1")


def _torch_size(dims=()):
    return _int_tuple(dims, "torch.Size")


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): _torch_size,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
}
_ALLOWED_CALLABLES = set(_ALLOWED.values())
# Classes a pickle may instantiate with NEWOBJ (cls.__new__(cls)) besides stand-ins.
_ALLOWED_NEW = {collections.OrderedDict, set, frozenset}


def _counted(handler):
    def run(self):
        self._spend(1)
        handler(self)
    return run


_CONTAINER_CALLS = (collections.OrderedDict, set, frozenset)


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python interpreter: opcode hooks
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, data, archive):
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._size = len(data)
        self._storages = {}
        self._budget = max(_WORK_MINIMUM, _WORK_PER_BYTE * len(data))
        # id -> nesting depth of every tuple built here; the tuples are kept alive in
        # _tuples so that no id is reused while the pickle runs.
        self._tuple_depth = {}
        self._tuples = []

    def _spend(self, units):
        self._budget -= units
        if self._budget < 0:
            raise CheckpointError(f"the pickle does more work than its {self._size} bytes can justify "
                                  f"(a decompression-bomb pattern); refusing it")

    def _depth(self, obj):
        return self._tuple_depth.get(id(obj), 0) if type(obj) is tuple else 0

    def _push_tuple(self, items):
        t = tuple(items)
        depth = 1 + max((self._depth(x) for x in t), default=0)
        if depth > _MAX_TUPLE_DEPTH:
            raise CheckpointError(f"tuples nested deeper than {_MAX_TUPLE_DEPTH} levels: not a checkpoint")
        self._tuple_depth[id(t)] = depth
        self._tuples.append(t)
        self.append(t)

    def load_tuple(self):
        self._push_tuple(self.pop_mark())
    dispatch[pickle.TUPLE[0]] = load_tuple

    def _tuple_n(n):  # TUPLE1..3: the top n stack items become one tuple
        def load(self):
            if len(self.stack) < n:
                raise CheckpointError(f"TUPLE{n} with {len(self.stack)} items on the stack")
            items = self.stack[-n:]
            del self.stack[-n:]
            self._push_tuple(items)
        return load
    dispatch[pickle.TUPLE1[0]] = _tuple_n(1)
    dispatch[pickle.TUPLE2[0]] = _tuple_n(2)
    dispatch[pickle.TUPLE3[0]] = _tuple_n(3)
    del _tuple_n

    def find_class(self, module, name):
        if not isinstance(module, str) or not isinstance(name, str):
            raise CheckpointError("a pickle global's module and name must be strings")
        if self.proto < 3:  # Python 2 names, as pickle's fix_imports maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in ("torch", "torch.storage") and name in _STORAGE_TYPES:
            return StorageType(name)
        return _stand_in(module, name)

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], StorageType) or not isinstance(pid[2], str)
                or not isinstance(pid[4], int) or isinstance(pid[4], bool) or pid[4] < 0):
            raise CheckpointError(f"unexpected persistent id {pid!r} (expected a torch storage)")
        _, stype, key, _location, numel = pid
        storage = self._storages.get(key)
        if storage is None:
            storage = self._archive.storage(key, stype, numel)
            self._storages[key] = storage
        elif storage.stype.st_dtype != stype.st_dtype or storage.numel != numel:
            raise CheckpointError(f"storage {key} is referenced with two different types")
        return storage

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not isinstance(args, tuple):
            raise CheckpointError("REDUCE arguments are not a tuple")
        # Identity, not hashing: hashing a hostile object is itself a way in.
        if not (isinstance(func, _StandInMeta) or any(func is f for f in _ALLOWED_CALLABLES)):
            raise UnsafePickleError(f"the checkpoint's pickle calls a {type(func).__name__}; refusing")
        if any(func is c for c in _CONTAINER_CALLS):
            self._spend(sum(len(a) for a in args if hasattr(a, "__len__")))
        self.stack[-1] = func(*args)
    dispatch[pickle.REDUCE[0]] = load_reduce

    def _new(self, cls, args):
        if isinstance(cls, _StandInMeta):
            return Inert(cls.qualname, args)
        if any(cls is c for c in _ALLOWED_NEW):
            return cls.__new__(cls)
        raise UnsafePickleError(f"the checkpoint's pickle instantiates {cls!r}; refusing")

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args))
    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        self.stack.pop()  # keyword arguments: a stand-in records only positional ones
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args))
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_bytearray8(self):
        # The stock handler allocates the announced length before reading: a corrupt length
        # would allocate gigabytes. No payload can be longer than the pickle itself.
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self._size:
            raise CheckpointError(f"BYTEARRAY8 of {n} bytes in a {self._size}-byte pickle")
        data = self.read(n)
        if len(data) != n:
            raise CheckpointError("pickle data truncated inside a BYTEARRAY8")
        self.append(bytearray(data))
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Inert):
            inst.state = state
        elif not isinstance(inst, dict):
            # A dict's state is the attributes of a subclass (an OrderedDict state dict's
            # _metadata): irrelevant here. Anything else could overwrite a validated view.
            raise UnsafePickleError(f"the checkpoint's pickle sets state on {type(inst).__name__}")
    dispatch[pickle.BUILD[0]] = load_build


# Every opcode pays one unit of the work budget.
_RestrictedUnpickler.dispatch = {op: _counted(h) for op, h in _RestrictedUnpickler.dispatch.items()}


# Exceptions the pure-Python unpickler raises on malformed input; each becomes CheckpointError.
_MALFORMED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
              AttributeError, OverflowError, struct.error, RecursionError, MemoryError)


def unpickle(data, archive):
    """Unpickles `data` (a data.pkl) with the restricted rules; storages come from `archive`."""
    try:
        return _RestrictedUnpickler(data, archive).load()
    except CheckpointError:
        raise
    except _MALFORMED as e:
        raise CheckpointError(f"corrupt pickle ({type(e).__name__}: {e})") from None


class _Archive:
    """The zip side of a checkpoint: storage entries and the byte order they were written in."""

    def __init__(self, path, zf, prefix, byteorder):
        self.path, self.zf, self.prefix, self.byteorder = path, zf, prefix, byteorder

    def storage(self, key, stype, numel):
        entry = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(entry)
        except KeyError:
            raise CheckpointError(f"{self.path}: storage {entry} is missing from the archive") from None
        if info.compress_type not in _BOUNDED_COMPRESSION:
            # torch.save stores members uncompressed; Python's bzip2/lzma readers inflate a whole
            # chunk at once, so a few bytes could become gigabytes before one float is read.
            raise CheckpointError(f"{self.path}: storage {entry} is compressed (zip method "
                                  f"{info.compress_type}); only stored or deflated members are read")
        itemsize = np.dtype(stype.np_dtype).itemsize
        if info.file_size < numel * itemsize:
            raise CheckpointError(f"{self.path}: storage {entry} has {info.file_size} bytes, "
                                  f"{numel} x {stype.name} need {numel * itemsize}")
        return Storage(self, entry, stype, numel)

    def view(self, t):
        st = t.storage
        dtype = np.dtype(st.stype.np_dtype).newbyteorder("<" if self.byteorder == "little" else ">")
        numel = 1
        for s in t.shape:
            numel *= s
        if numel == 0:
            return np.zeros(t.shape, dtype=dtype.newbyteorder("="))
        # Only the elements this view spans are read (streamed, for a compressed member): never
        # the whole storage, which may be a shared flat buffer or a compression bomb.
        span = 1 + sum((s - 1) * st_ for s, st_ in zip(t.shape, t.stride))
        start, length = t.offset * dtype.itemsize, span * dtype.itemsize
        try:
            with self.zf.open(st.entry) as member:
                member.seek(start)
                raw = member.read(length)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
            raise CheckpointError(f"{self.path}: cannot read {st.entry}: {e}") from None
        if len(raw) != length:
            raise CheckpointError(f"{self.path}: {st.entry} ends after {start + len(raw)} bytes, "
                                  f"the tensor needs {start + length}")
        flat = np.frombuffer(raw, dtype=dtype, count=span)
        strides = tuple(s * dtype.itemsize for s in t.stride)
        view = np.lib.stride_tricks.as_strided(flat, shape=t.shape, strides=strides)
        return np.array(view, dtype=dtype.newbyteorder("="), order="C")


def load_checkpoint(path):
    """Returns the unpickled top-level object of a torch.save zip; tensors are lazy `Tensor`s.

    The zip stays open for the tensors' lazy reads (it closes when they are garbage)."""
    try:
        zf = zipfile.ZipFile(open_regular_file(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        try:
            with open_regular_file(path) as f:
                magic = f.read(2)
        except OSError:
            magic = b""
        hint = " (a legacy pre-1.6 torch.save file: re-save it with a recent torch)" \
            if magic == b"\x80\x02" else ""
        raise CheckpointError(f"{path}: not a torch zip checkpoint ({e}){hint}") from None
    try:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise CheckpointError(f"{path}: expected one <name>/data.pkl in the zip, found {len(pkls)}")
        prefix = pkls[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in zf.namelist():
            with zf.open(prefix + "byteorder") as member:
                byteorder = member.read(16).decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointError(f"{path}: unknown byteorder {byteorder!r}")
        with zf.open(pkls[0]) as member:  # read bounded: a compressed pickle may declare anything
            data = member.read(_MAX_PICKLE_BYTES + 1)
        if len(data) > _MAX_PICKLE_BYTES:
            raise CheckpointError(f"{path}: {pkls[0]} is larger than {_MAX_PICKLE_BYTES} bytes: "
                                  "not a state dict's pickle")
    except CheckpointError:
        zf.close()
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        zf.close()
        raise CheckpointError(f"{path}: corrupt zip ({e})") from None
    return unpickle(data, _Archive(path, zf, prefix, byteorder))
