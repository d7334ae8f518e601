"""safetensors reading and writing with numpy only (no torch, no safetensors package).

Layout (the Hugging Face format the C++ reader expects): 8-byte little-endian header length,
a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}} padded with
spaces to a multiple of 8 bytes, then the tensors' little-endian bytes back to back.
A sharded model is model-00001-of-0000N.safetensors ... plus model.safetensors.index.json
({"metadata": {"total_size": bytes}, "weight_map": {name: shard file}}).

BF16 has no numpy dtype: it travels as uint16 bit patterns; `to_dtype` converts with
round-to-nearest-even, as torch does.
"""
import errno
import json
import os
import stat
import struct

import numpy as np

__all__ = ["SafetensorsError", "DTYPES", "to_dtype", "bf16_to_f32", "f32_to_bf16",
           "read_file", "read_header", "read_model_dir", "write_file", "write_sharded",
           "parse_size"]


class SafetensorsError(Exception):
    """A safetensors file or model directory that cannot be read or written."""


# safetensors dtype tag -> numpy dtype used to hold the bytes (BF16 as raw uint16).
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


def bf16_to_f32(bits):
    """uint16 bfloat16 patterns -> float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """float32 -> uint16 bfloat16 patterns, round to nearest even; NaN stays a quiet NaN."""
    bits = np.asarray(x, dtype=np.float32, order="C").view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))) >> 16
    nan = np.isnan(bits.view(np.float32))
    return np.where(nan, (bits >> 16) | 0x40, rounded).astype(np.uint16)


def to_dtype(array, src, dst):
    """Converts `array` holding safetensors dtype `src` to float dtype `dst` (F32/F16/BF16)."""
    if src == dst:
        return array
    if src not in FLOAT_DTYPES or dst not in ("F32", "F16", "BF16"):
        raise SafetensorsError(f"cannot convert {src} to {dst}")
    f32 = bf16_to_f32(array) if src == "BF16" else array.astype(np.float32)
    if dst == "F32":
        return f32
    if dst == "F16":
        # From F64 this rounds twice (via F32); checkpoints are F32/F16/BF16, where it is exact.
        return f32.astype(np.float16)
    return f32_to_bf16(f32)


def open_regular_file(path):
    """A binary file object of `path`, which must be a regular file: opening a FIFO never
    blocks, and a device, socket or directory is refused (OSError) before a byte is read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or directory)", path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path, max_bytes):
    """The bytes of a regular file of at most max_bytes (counted as read)."""
    with open_regular_file(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SafetensorsError(f"{path}: larger than the {max_bytes}-byte limit for such a file")
    return data


def parse_size(text):
    """'2GB' -> 2000000000; units B, KB, MB, GB (powers of 1000) and KiB, MiB, GiB."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    t = str(text).strip().upper()
    num = t.rstrip("KMGTIB")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1
    if unit not in units or not value > 0:
        raise SafetensorsError(f"invalid size {text!r} (examples: 2GB, 500MB, 1GiB, 4096)")
    return int(value * units[unit])


def _header_bytes(entries, metadata):
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, dtype, shape in entries:
        nbytes = DTYPES[dtype].itemsize * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": dtype, "shape": [int(s) for s in shape],
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offset


def write_file(path, entries, produce, metadata=None):
    """Streams one safetensors file.

    entries: [(name, dtype, shape)] in file order; produce(name) returns that tensor's array
    (called once per tensor, in order, so only one tensor is in memory at a time)."""
    header, total = _header_bytes(entries, metadata)
    if os.path.lexists(path):  # a writer of new files: nothing already there is replaced
        raise SafetensorsError(f"{path}: already exists; refusing to overwrite it")
    tmp = path + ".partial"
    created = False
    try:
        with open(tmp, "xb") as f:
            created = True
            f.write(header)
            for name, dtype, shape in entries:
                arr = np.asarray(produce(name), order="C")
                if arr.dtype.newbyteorder("<") != DTYPES[dtype] or list(arr.shape) != list(shape):
                    raise SafetensorsError(f"{name}: produced {arr.dtype}{list(arr.shape)}, "
                                           f"header says {dtype}{list(shape)}")
                if arr.size:  # through the buffer protocol: no extra copy of a multi-GB tensor
                    f.write(memoryview(np.ascontiguousarray(arr.astype(DTYPES[dtype], copy=False))).cast("B"))
        os.replace(tmp, path)
    except BaseException:
        if created:
            os.remove(tmp)
        raise
    return len(header) + total


def write_sharded(out_dir, entries, produce, shard_bytes, metadata=None, log=None):
    """Writes model.safetensors, or model-0000i-of-0000N.safetensors shards of at most
    `shard_bytes` of tensor data each (a larger tensor gets a shard of its own) plus
    model.safetensors.index.json. Returns the list of files written; `log(message)`, when
    given, hears about each file as it starts."""
    shards, size = [[]], 0
    for e in entries:
        n = DTYPES[e[1]].itemsize * int(np.prod(e[2], dtype=np.int64))
        if shards[-1] and size + n > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(e)
        size += n
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map, total = {}, 0
    for name, shard in zip(names, shards):
        if log:
            log(f"writing {name} ({len(shard)} tensors)")
        write_file(os.path.join(out_dir, name), shard, produce, metadata)
        for e in shard:
            weight_map[e[0]] = name
            total += DTYPES[e[1]].itemsize * int(np.prod(e[2], dtype=np.int64))
    if len(shards) > 1:
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
            f.write("\n")
        names.append("model.safetensors.index.json")
    return names


def read_header(path):
    """Returns (header dict without __metadata__, metadata dict, data start offset)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise SafetensorsError(f"{path}: too short for a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise SafetensorsError(f"{path}: header length {n} exceeds the file size")
            header = json.loads(f.read(n))
    except OSError as e:
        raise SafetensorsError(f"{path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data_size = size - 8 - n
    for name, h in header.items():
        try:
            dtype = DTYPES[h["dtype"]]
            begin, end = h["data_offsets"]
            count = int(np.prod(h["shape"], dtype=np.int64))
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name}: malformed header entry") from None
        if not 0 <= begin <= end <= data_size or end - begin != count * dtype.itemsize:
            raise SafetensorsError(f"{path}: tensor {name}: data_offsets {h['data_offsets']} "
                                   f"do not fit {h['dtype']}{h['shape']} in {data_size} bytes")
    return header, meta, 8 + n


def read_file(path, dtype=None):
    """{name: np.ndarray} of one file (memory-mapped, read-only). Integer tensors stay as they
    are; with dtype ('F32'/'F16'/'BF16') floating tensors are converted to it. BF16 tensors
    without a dtype come back as float32."""
    header, _, start = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r") if header else None
    out = {}
    for name, h in header.items():
        begin, end = h["data_offsets"]
        arr = mm[start + begin:start + end].view(DTYPES[h["dtype"]]).reshape(h["shape"])
        if dtype is not None and h["dtype"] in FLOAT_DTYPES:
            arr = to_dtype(arr, h["dtype"], dtype)
        elif h["dtype"] == "BF16":
            arr = bf16_to_f32(arr)
        out[name] = arr
    return out


def read_model_dir(path, dtype=None):
    """All tensors of a model directory (model.safetensors or an index with shards)."""
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SafetensorsError(f"{index}: cannot read the weight map ({e})") from None
        out = {}
        for shard in sorted(set(weight_map.values())):
            if os.path.basename(shard) != shard:
                raise SafetensorsError(f"{index}: shard {shard!r} must be a plain file name")
            tensors = read_file(os.path.join(path, shard), dtype)
            for name, file in weight_map.items():
                if file == shard:
                    if name not in tensors:
                        raise SafetensorsError(f"{index}: {name} is not in {shard}")
                    out[name] = tensors[name]
        return out
    single = os.path.join(path, "model.safetensors")
    if not os.path.exists(single):
        raise SafetensorsError(f"{path}: no model.safetensors or model.safetensors.index.json")
    return read_file(single, dtype)
