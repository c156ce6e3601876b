"""edgemeta.runtime: the torch-free side of edgemeta (numpy, onnxruntime, OpenCV).

Importing this package must never import torch: it is what runs on the device.
Heavy or optional pieces (OpenCV frame handling, TensorRT) live in their own modules
and are imported by whoever needs them.
"""
