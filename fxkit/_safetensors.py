"""The safetensors file layout, written and read with torch alone.

A file is an 8-byte little-endian header length, a JSON header (each tensor's dtype, shape and byte
range, plus a ``__metadata__`` dict of strings), then the tensors' bytes. Reading checks every
field and every byte range before it touches the data, so a damaged file raises ``ValueError``.
Files written here load with the ``safetensors`` package and the other way round.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import sys
from typing import Dict, Tuple, Union

import torch

__all__ = ["read", "write"]

_DTYPES: Dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "C64": torch.complex64, "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
}  # fmt: skip
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_MAX_HEADER = 100_000_000
_WRITE_BUFFER = 1 << 20
_FIELDS = {"dtype", "shape", "data_offsets"}


def write(path: Union[str, os.PathLike], tensors: Dict[str, torch.Tensor], metadata: Dict[str, str]) -> None:
    """Write ``tensors`` (CPU, contiguous) and ``metadata`` to ``path``."""
    if sys.byteorder != "little":
        raise ValueError("safetensors files are little-endian; this machine is not")
    header: Dict[str, object] = {"__metadata__": metadata}
    chunks = []
    offset = 0
    for key, tensor in tensors.items():
        name = _NAMES.get(tensor.dtype)
        if name is None:
            raise ValueError(f"cannot save tensor {key!r}: dtype {tensor.dtype} has no safetensors name")
        size = tensor.nbytes
        header[key] = {"dtype": name, "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
        if size:
            chunks.append((ctypes.c_char * size).from_address(tensor.data_ptr()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    buffers = [len(text).to_bytes(8, "little") + text, *chunks]
    if hasattr(os, "writev"):
        # The tensors' own memory handed to the OS in few calls, not copied through a file buffer:
        # the 3.4 MB of benchmarks/bench_save.py took 1.2 ms here, 1.5 ms buffered (1.9 ms unbuffered).
        with open(path, "wb", buffering=0) as handle:
            _write_gathered(handle.fileno(), buffers)
    else:
        with open(path, "wb", buffering=_WRITE_BUFFER) as handle:
            handle.writelines(buffers)


def _write_gathered(fd: int, buffers: list) -> None:
    """Write ``buffers`` in order with ``os.writev``, going on after a short write."""
    batch_size = _iov_max()
    index = 0
    while index < len(buffers):
        batch = buffers[index : index + batch_size]
        written = os.writev(fd, batch)
        if not written:
            raise OSError(f"could not write to the file (descriptor {fd})")
        for buffer in batch:
            size = memoryview(buffer).nbytes
            if written < size:  # the rest of this buffer goes first in the next call
                buffers[index] = memoryview(buffer).cast("B")[written:]
                break
            written -= size
            index += 1


def read(path: Union[str, os.PathLike]) -> Tuple[Dict[str, str], Dict[str, torch.Tensor]]:
    """The metadata and the tensors of the file at ``path``; ``ValueError`` if it is malformed."""
    with open(path, "rb") as handle:
        data = bytearray(os.fstat(handle.fileno()).st_size)
        if handle.readinto(data) != len(data):
            raise ValueError("the file changed while it was read")
    if len(data) < 8:
        raise ValueError("too short for a safetensors file")
    size = int.from_bytes(data[:8], "little")
    if size > min(len(data) - 8, _MAX_HEADER):
        raise ValueError("the header length is larger than the file")
    try:
        header = json.loads(data[8 : 8 + size])
    except (ValueError, RecursionError) as error:
        raise ValueError(f"the header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("__metadata__ must map strings to strings")
    start, end = 8 + size, len(data)
    ranges = []
    tensors: Dict[str, torch.Tensor] = {}
    for key, entry in header.items():
        tensors[key] = _tensor(data, key, entry, start, end, ranges)
    ranges.sort()
    for (_, first_end), (second_start, _) in zip(ranges, ranges[1:]):
        if second_start < first_end:
            raise ValueError("two tensors share bytes")
    return metadata, tensors


def _tensor(data: bytearray, key: str, entry: object, start: int, end: int, ranges: list) -> torch.Tensor:
    if type(entry) is not dict or entry.keys() != _FIELDS:
        raise ValueError(f"tensor {key!r}: malformed entry")
    name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    dtype = _DTYPES.get(name) if type(name) is str else None
    if dtype is None:
        raise ValueError(f"tensor {key!r}: unknown dtype {name!r:.40}")
    if type(shape) is not list or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise ValueError(f"tensor {key!r}: malformed shape")
    if (
        type(offsets) is not list
        or len(offsets) != 2
        or type(offsets[0]) is not int
        or type(offsets[1]) is not int
    ):
        raise ValueError(f"tensor {key!r}: malformed data_offsets")
    count = math.prod(shape)
    begin, stop = start + offsets[0], start + offsets[1]
    itemsize = dtype.itemsize
    if not (start <= begin <= stop <= end) or stop - begin != count * itemsize:
        raise ValueError(f"tensor {key!r}: its byte range does not match its shape or the file")
    ranges.append((begin, stop))
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    if begin % itemsize:  # keep element reads aligned: copy the bytes to a fresh buffer
        flat = torch.frombuffer(bytearray(data[begin:stop]), dtype=dtype)
    else:
        flat = torch.frombuffer(data, dtype=dtype, count=count, offset=begin)
    if dtype is torch.bool and bool((flat.view(torch.uint8) > 1).any()):
        raise ValueError(f"tensor {key!r}: a bool tensor holds bytes other than 0 and 1")
    return flat if len(shape) == 1 else flat.view(shape)


def _iov_max() -> int:
    """How many buffers one ``os.writev`` call takes here (16, the POSIX minimum, if unknown)."""
    try:
        limit = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):
        return 16
    return min(limit, 1024) if limit > 0 else 16
