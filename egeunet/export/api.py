"""``export()``: one entry point, one exporter per target, one uniform result.

Each export stages its artifact in a scratch folder inside ``out``, runs it (where its
runtime exists on this machine) against PyTorch fp32 on held-out images, and only when
parity holds moves the artifact and its ``manifest.json`` into ``out``. A failed check
leaves ``out`` as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import asdict
from pathlib import Path

from egeunet.export.common import (
    ExportError,
    ExportResult,
    Format,
    ParityError,
    Timer,
    check_writable_dir,
    find_format,
    publish,
    staging_dir,
)
from egeunet.export.manifest import build_manifest

log = logging.getLogger(__name__)

DEFAULT_NUM_CALIB = 200
DEFAULT_NUM_VERIFY = 64


def default_out(fmt: Format) -> Path:
    return Path("exports") / fmt.key


def artifact_name(fmt: Format) -> str:
    return f"egeunet_{fmt.precision}{fmt.suffix}"


def export(target: str, precision: str = "fp32", *, weights: str | Path | None = None, out: str | Path | None = None,
           calib: str | Path | None = None, num_calib: int = DEFAULT_NUM_CALIB, data: str | Path | None = None,
           num_verify: int = DEFAULT_NUM_VERIFY, min_iou: float | None = None, output: str | None = None,
           converter: str = "tf", max_prob_diff: float | None = None) -> ExportResult:
    """Export the model in ``weights`` (default: the shipped weights) to ``target``.

    Args:
        target: "onnx", "tflite" or "coreml".
        precision: "fp32" (onnx, tflite), "fp16" (tflite, coreml), "int8" (tflite: int8 weights and
            conv arithmetic; coreml: int8 weights) or "int8-full" (tflite, full integer, uint8 input).
        calib: folder of images for int8 calibration (default: train split, else synthetic).
        data: data root for calibration and parity images (default: --data / $EGEUNET_DATA / ../shared).
        min_iou: parity gate on mask IoU vs PyTorch fp32 (default per format).
        max_prob_diff: parity gate on max |probability difference| vs PyTorch fp32 (default per
            format; only fp32 files have one).
        output: "logits" or "probs" (default: logits; see docs/export.md for why).
        converter: TFLite only: "tf" (our NHWC graph + TensorFlow's converter, the default)
            or "onnx2tf" (the ONNX file through onnx2tf, kept for comparison).
    Returns:
        ExportResult with the artifact path, size, time and parity.
    Raises:
        ValueError for bad arguments, ExportError when the export or its parity check fails.
    """
    from egeunet.data import resolve_data_root
    from egeunet.model.checkpoint import load_checkpoint

    fmt = find_format(target, precision)
    if num_calib < 1 or num_verify < 1:
        raise ValueError(f"--num-calib and the number of parity images must be >= 1 (got {num_calib}, {num_verify})")
    if min_iou is not None and not math.isfinite(min_iou):  # NaN would pass every gate and is not JSON
        raise ValueError(f"min_iou must be a number, not {min_iou}")
    if max_prob_diff is not None and not (math.isfinite(max_prob_diff) and max_prob_diff >= 0):
        raise ValueError(f"max_prob_diff must be a number >= 0, not {max_prob_diff}")
    output = output or "logits"
    if output not in ("logits", "probs"):
        raise ValueError(f"output must be 'logits' or 'probs', not {output!r}")
    model, pre, meta = load_checkpoint(weights)
    out = Path(out) if out else default_out(fmt)
    with _removed_if_left_empty(out):
        out = check_writable_dir(out)
        _check_no_other_export(out, artifact_name(fmt))
        # parity and calibration images from the weights' own data unless --data says otherwise
        data_root = resolve_data_root(data, required=False, trained_on=meta.get("data"))

        from egeunet.export import calibration, verify

        images, source = calibration.parity_images(num_verify, pre.size, data_root)
        ref = verify.reference_logits(model, images, pre)
        with Timer() as t, staging_dir(out) as stage:
            artifact = stage / artifact_name(fmt)
            try:
                io, extra = _convert(fmt, model, pre, artifact, output, stage, calib, num_calib, data_root, converter)
            except (ValueError, ImportError, ExportError):
                raise
            except Exception as e:  # a converter's own failure: say which step, keep one line
                first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
                raise ExportError(f"{fmt.key} conversion failed ({e.__class__.__name__}: {first})") from e
            parity = _verify(fmt, artifact, io, pre, images, ref, source, min_iou, max_prob_diff)
            model_info = {"name": "EGE-UNet-BN" if model.config.norms == "batch" else "EGE-UNet",
                          "config": asdict(model.config)}
            # which data the weights (and their normalisation) came from: the normalisation alone
            # cannot tell a Kvasir model from an ISIC one, and egeunet-eval --model defaults to it
            if meta.get("data"):
                extra["weights_data"] = meta["data"]
            manifest = build_manifest(fmt, artifact, io, pre, meta["weights_sha256"], parity, model=model_info, **extra)
            final, man = publish(artifact, manifest, out)
    result = ExportResult(fmt, final, man, manifest["bytes"], t.seconds, parity)
    return result


@contextlib.contextmanager
def _removed_if_left_empty(out: Path):
    """A failed export leaves no empty folder behind that it created itself (``out`` and any
    parents it needed)."""
    made = [p for p in (out, *out.parents) if not p.exists()]  # the leaf first
    try:
        yield
    except BaseException:
        for p in made:
            if not p.is_dir() or any(p.iterdir()):
                break
            p.rmdir()
        raise


def _check_no_other_export(out: Path, name: str) -> None:
    """One export per folder: its manifest.json describes one artifact, so a second variant
    would leave the first one beside a manifest that is not its own."""
    man = out / "manifest.json"
    if not man.is_file():
        return
    try:
        other = json.loads(man.read_text(encoding="utf-8")).get("file")
    except (ValueError, AttributeError):  # not JSON, or not an object: no export of ours
        other = None
    if other != name:
        raise ValueError(f"{out} already holds another export ({man.name} describes {other!r}); give each "
                         f"variant its own --out folder")


def _convert(fmt: Format, model, pre, artifact: Path, output: str, stage: Path, calib, num_calib: int, data_root,
             converter: str = "tf"):
    """Write ``artifact``; returns (io spec, manifest extras)."""
    from egeunet.export import calibration

    if fmt.target == "onnx":
        from egeunet.export.onnx_export import onnx_io_spec, torch_to_onnx

        return onnx_io_spec(pre.size, output), {"graph": torch_to_onnx(model, pre.size, artifact, output)}
    if fmt.target == "tflite":
        from egeunet.export.tflite_export import to_tflite

        calib_images, calib_source = None, None
        if fmt.precision == "int8-full":
            calib_images, calib_source = calibration.calibration_images(calib, num_calib, pre.size, data_root)
        io, extra = to_tflite(model, pre, artifact, fmt.precision, output, calib_images, stage, converter)
        if calib_source:
            extra["calibration"] = {"images": calib_source, "n_images": int(len(calib_images))}
        return io, extra
    from egeunet.export.coreml_export import torch_to_coreml

    return torch_to_coreml(model, pre, artifact, fmt.precision, output)


def _verify(fmt: Format, artifact: Path, io, pre, images, ref, source: str, min_iou: float | None,
            max_prob_diff: float | None = None) -> dict:
    from egeunet.export.verify import check_parity
    from egeunet.runtimes import open_runtime

    if not fmt.runtime:
        return {"max_abs": None, "iou": None, "dice": None, "n_images": 0,
                "skipped": f"{fmt.target} prediction needs macOS; parity not checked on this machine"}
    manifest = {"preprocessing": pre.to_dict(), "io": io.to_dict()}
    try:
        rt = open_runtime(artifact, runtime=fmt.runtime, manifest=manifest)
    except ImportError as e:
        return {"max_abs": None, "iou": None, "dice": None, "n_images": 0, "skipped": str(e)}
    parity = check_parity(rt, images, ref, source)
    gate_iou = fmt.min_iou if min_iou is None else min_iou
    gate_prob = fmt.max_abs if max_prob_diff is None else max_prob_diff
    parity["gate"] = {"min_iou": gate_iou, "max_abs_prob": gate_prob}
    problems, flags = [], []
    if parity["iou"] < gate_iou:
        problems.append(f"mask IoU {parity['iou']:.4f} < {gate_iou}")
        flags.append("--min-iou")
    if gate_prob is not None and parity["max_abs_prob"] > gate_prob:
        problems.append(f"max |probability diff| {parity['max_abs_prob']:.2e} > {gate_prob:.0e}")
        # --min-iou cannot lift this gate: naming it alone left fp32 exports of weights trained
        # on other data (Kvasir-SEG: 1.1e-3 on TFLite fp32, 2.3e-4 on ONNX) with no way out
        flags.append("--max-prob-diff")
    if problems:
        raise ParityError(f"{fmt.key} export disagrees with PyTorch fp32 on {parity['n_images']} images: "
                          f"{'; '.join(problems)}. Nothing was written (lower the gate with {' and '.join(flags)} "
                          "to keep it).")
    return parity


__all__ = ["export", "ExportError", "ParityError", "ExportResult"]
