"""Backends: one learner step with its state kept between steps (ONNX Runtime, TensorRT, native C)."""
