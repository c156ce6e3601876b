"""edgemeta.export: one learner step to ONNX (and TensorRT) with explicit state, checked for parity."""
