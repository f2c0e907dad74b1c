"""Export: torch -> ONNX (the hub) -> TFLite fp32/fp16/int8, torch -> Core ML.

Not built yet (issue "Export"): the exporters will read the model, its weights and the
preprocessing contract (:mod:`egeunet.preprocess`) from a checkpoint via
:func:`egeunet.model.checkpoint.load_checkpoint` and write a manifest beside every artifact.
"""
