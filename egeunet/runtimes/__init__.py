"""Runtimes: one small interface (load a model file, ``predict(image)``), one module per
back end (PyTorch, ONNX Runtime, LiteRT, Core ML). Not built yet (issue "Runtimes")."""
