"""The smallest ONNX model doctor opens to learn which execution providers really load: y = Relu(x).

`onnxruntime.get_available_providers()` lists what a build was compiled with, not what can load on this
machine (a TensorRT provider whose libnvinfer is missing still appears there). Opening a session is the
only honest test, and a one-node graph keeps it to a fraction of a second, also when TensorRT builds an
engine for it. The runtime has no `onnx` package, so the bytes are written here in protobuf's wire format:

    ModelProto         1 ir_version, 7 graph, 8 opset_import (OperatorSetIdProto: 1 domain, 2 version)
    GraphProto         1 node, 2 name, 11 input, 12 output
    NodeProto          1 input, 2 output, 3 name, 4 op_type
    ValueInfoProto     1 name, 2 type (TypeProto: 1 tensor_type: 1 elem_type, 2 shape: 1 dim: 1 dim_value)
"""
from __future__ import annotations

IR_VERSION = 8  # read by every onnxruntime edgemeta supports (>= 1.17)
OPSET = 13  # within every TensorRT parser's range, down to 8.2
INPUT, OUTPUT = "x", "y"
WIDTH = 8
FLOAT = 1  # TensorProto.FLOAT


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _value_info(name: str) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d)) for d in (1, WIDTH))
    tensor = _int(1, FLOAT) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor))


def probe_model_bytes() -> bytes:
    """A serialized ModelProto: float32 x [1, 8] -> Relu -> y [1, 8]."""
    node = _bytes(1, INPUT) + _bytes(2, OUTPUT) + _bytes(3, "probe") + _bytes(4, "Relu")
    graph = _bytes(1, node) + _bytes(2, "edgemeta-doctor-probe") + _bytes(11, _value_info(INPUT)) + _bytes(12, _value_info(OUTPUT))
    opset = _bytes(1, "") + _int(2, OPSET)
    return _int(1, IR_VERSION) + _bytes(7, graph) + _bytes(8, opset)
