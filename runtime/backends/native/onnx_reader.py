"""Read an .onnx file's weights, graph inputs/outputs and metadata without the `onnx` package.

The runtime depends on numpy and onnxruntime only (`onnx` comes with the [train] extra), and
onnxruntime does not hand out a session's initializers. The native backend needs exactly three
things from learner.onnx: the initializers (weights), the graph's inputs/outputs (for the contract
check) and the metadata_props (the edgemeta JSON). An ONNX file is one protobuf ModelProto, and
those parts are a handful of fields of it, so this module reads the protobuf wire format directly:

    ModelProto       7 graph (GraphProto), 14 metadata_props (StringStringEntryProto: 1 key, 2 value)
    GraphProto       5 initializer (TensorProto), 11 input, 12 output (ValueInfoProto)
    TensorProto      1 dims (int64, packed or not), 2 data_type, 4 float_data, 5 int32_data,
                     7 int64_data, 8 name, 9 raw_data, 10 double_data, 11 uint64_data,
                     13 external_data, 14 data_location (1 = EXTERNAL)
    ValueInfoProto   1 name, 2 type (TypeProto: 1 tensor_type: 1 elem_type, 2 shape: 1 dim: 1 dim_value, 2 dim_param)

Everything else is skipped by its length without being decoded. Tests compare the result with
`onnx.load` on the shipped learners.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError

# TensorProto.DataType -> numpy dtype (little-endian, as raw_data is stored)
DTYPES = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?", 10: "<f2", 11: "<f8",
          12: "<u4", 13: "<u8"}
ELEM_NAMES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
              10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}
_INT32_DATA_TYPES = {2, 3, 4, 5, 6, 9, 10}  # stored in int32_data when not raw (float16 as its bits)


class OnnxReadError(EdgemetaError):
    """The file is not an ONNX model this reader understands."""


@dataclass
class ValueInfo:
    name: str
    shape: list  # ints, or str (a named symbolic axis) or None (unknown)
    dtype: str  # "float32", ...


@dataclass
class OnnxContents:
    initializers: dict = field(default_factory=dict)  # name -> np.ndarray
    metadata: dict = field(default_factory=dict)  # metadata_props key -> value
    inputs: list = field(default_factory=list)  # ValueInfo, graph inputs that are not initializers
    outputs: list = field(default_factory=list)  # ValueInfo


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxReadError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxReadError("varint longer than 64 bits")


def _fields(buf):
    """Yield (field number, wire type, value) of one message: value is an int for varints and
    fixed-width fields, a memoryview for length-delimited ones."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise OnnxReadError(f"field {number} runs past the end of its message")
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        else:
            raise OnnxReadError(f"unsupported protobuf wire type {wire} (field {number})")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed_varints(buf) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(_signed64(v))
    return out


def _text(buf) -> str:
    return bytes(buf).decode("utf-8")


def read_tensor(buf, where: str = "") -> tuple[str, np.ndarray]:
    """One TensorProto -> (name, array)."""
    dims, name, dtype, raw, location = [], "", 1, None, 0
    typed = {4: [], 5: [], 7: [], 10: [], 11: []}  # float, int32, int64, double, uint64 data
    for number, wire, value in _fields(buf):
        if number == 1:
            dims.extend(_packed_varints(value) if wire == 2 else [_signed64(value)])
        elif number == 2:
            dtype = value
        elif number == 8:
            name = _text(value)
        elif number == 9:
            raw = value
        elif number == 14:
            location = value
        elif number in typed:
            if wire == 2:  # packed
                fmt = {4: "<f4", 10: "<f8"}.get(number)
                typed[number].append(np.frombuffer(value, fmt) if fmt else np.array(_packed_varints(value), np.int64))
            elif number == 4:
                typed[number].append(np.array([struct.unpack("<f", value.to_bytes(4, "little"))[0]], np.float32))
            elif number == 10:
                typed[number].append(np.array([struct.unpack("<d", value.to_bytes(8, "little"))[0]], np.float64))
            else:
                typed[number].append(np.array([_signed64(value)], np.int64))
    label = f"{where}initializer {name!r}"
    if location == 1:
        raise OnnxReadError(f"{label} keeps its data in an external file; re-export the learner as one self-contained .onnx")
    if dtype not in DTYPES:
        raise OnnxReadError(f"{label} has ONNX data type {dtype}, which this reader does not handle")
    np_dtype = np.dtype(DTYPES[dtype])
    count = int(np.prod(dims)) if dims else 1
    if raw is not None:
        arr = np.frombuffer(raw, np_dtype).copy()
    else:
        source = 4 if dtype == 1 else 10 if dtype == 11 else 7 if dtype == 7 else 11 if dtype in (12, 13) else 5
        parts = typed[source]
        values = np.concatenate(parts) if parts else np.zeros(0, np_dtype)
        if dtype == 10:  # float16 bits in int32_data
            arr = values.astype(np.uint16).view(np.float16)
        else:
            arr = values.astype(np_dtype)
    if arr.size != count:
        raise OnnxReadError(f"{label}: {arr.size} values for shape {dims}")
    return name, arr.reshape(dims).astype(np_dtype.newbyteorder("="), copy=False)


def _value_info(buf) -> ValueInfo:
    name, shape, elem = "", [], 0
    for number, _, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:
            for tn, _, tv in _fields(value):
                if tn != 1:  # tensor_type only
                    continue
                for fn, _, fv in _fields(tv):
                    if fn == 1:
                        elem = fv
                    elif fn == 2:
                        for dn, _, dv in _fields(fv):
                            if dn != 1:
                                continue
                            dim = None
                            for xn, _, xv in _fields(dv):
                                if xn == 1:
                                    dim = _signed64(xv)
                                elif xn == 2:
                                    dim = _text(xv)
                            shape.append(dim)
    return ValueInfo(name, shape, ELEM_NAMES.get(elem, f"onnx type {elem}"))


def read_onnx(path: str | os.PathLike) -> OnnxContents:
    """Initializers, metadata_props and graph inputs/outputs of an .onnx file."""
    path = Path(path)
    try:
        data = memoryview(path.read_bytes())
    except OSError as e:
        raise OnnxReadError(f"cannot read {path}: {e.strerror or e}") from None
    out = OnnxContents()
    graph = None
    try:
        for number, wire, value in _fields(data):
            if number == 7 and wire == 2:
                graph = value
            elif number == 14 and wire == 2:
                key = val = ""
                for fn, _, fv in _fields(value):
                    if fn == 1:
                        key = _text(fv)
                    elif fn == 2:
                        val = _text(fv)
                out.metadata[key] = val
        if graph is None:
            raise OnnxReadError("no graph")
        inputs = []
        for number, wire, value in _fields(graph):
            if number == 5 and wire == 2:
                name, arr = read_tensor(value)
                out.initializers[name] = arr
            elif number == 11 and wire == 2:
                inputs.append(_value_info(value))
            elif number == 12 and wire == 2:
                out.outputs.append(_value_info(value))
        out.inputs = [v for v in inputs if v.name not in out.initializers]
    except OnnxReadError as e:
        raise OnnxReadError(f"{path} is not an ONNX model this runtime can read ({e})") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise OnnxReadError(f"{path} is not an ONNX model this runtime can read ({type(e).__name__})") from None
    return out
