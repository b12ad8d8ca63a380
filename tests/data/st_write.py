"""The one safetensors writer of the fixture scripts under tests/data/ (generators, not run by CI).

Format: u64 little-endian header length, a compact JSON header padded with spaces to a multiple
of 8 bytes ({"__metadata__": ..., name: {dtype, shape, data_offsets}}), then the raw
little-endian tensor bytes in the order given.
"""
import json
import struct

import numpy as np

_CODES = {np.float16: "F16", np.float32: "F32", np.float64: "F64", np.uint8: "U8", np.int32: "I32"}


def save_safetensors(path, tensors, metadata, dtype=None):
    """tensors: a dict or a list of (name, array) pairs; dtype: cast every tensor to it first."""
    items = tensors.items() if isinstance(tensors, dict) else tensors
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, arr in items:
        arr = np.ascontiguousarray(arr, dtype=dtype)
        raw = arr.tobytes()
        header[name] = {"dtype": _CODES[arr.dtype.type], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
