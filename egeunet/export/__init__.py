"""Export: torch -> ONNX (the hub) -> TFLite fp32/fp16/int8; torch -> Core ML.

``export(target, precision, ...)`` is the one entry point (``egeunet-export`` is a thin CLI
over it); every artifact is verified against PyTorch fp32 and gets a ``manifest.json``.
"""

from egeunet.export.api import export
from egeunet.export.common import FORMATS, ExportError, ExportResult, Format, ParityError, find_format

__all__ = ["export", "FORMATS", "ExportError", "ExportResult", "Format", "ParityError", "find_format"]
