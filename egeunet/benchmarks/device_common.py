"""Host side of every device route (SSH, emulated lab): prepare the inputs once with the
runtime's own ``prepare()``, run ``device_runner.py`` (here or there), and turn its raw outputs
into the bench's numbers: Dice against the truth, agreement with PyTorch and parity with a run
of the same file on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RUNNER = Path(__file__).with_name("device_runner.py")


@dataclass
class Prepared:
    """A model file with its inputs for ``n`` test images, ready to ship to a device."""

    path: Path
    inputs: np.ndarray  # (N, *input shape), uint8 when that casts back to the model's dtype exactly
    runtime: object  # the host Runtime (manifest: preprocessing, io spec)


def prepare(path: str | Path, images: list[np.ndarray] | np.ndarray) -> Prepared:
    """Model inputs for ``images`` through the host runtime's ``prepare()`` (one contract)."""
    from egeunet.runtimes import open_runtime

    rt = open_runtime(path)
    xs = np.stack([rt.prepare(img) for img in images])
    if xs.dtype != np.uint8 and np.array_equal(xs, xs.astype(np.uint8)):
        xs = xs.astype(np.uint8)  # raw pixels in a float tensor: 4x fewer bytes to copy, cast back exactly
    return Prepared(Path(path), xs, rt)


def run_runner(python: list[str], model: Path, inputs: Path, threads: int = 1, warmup: int = 0, runs: int = 0,
               json_out: Path | None = None, outputs: Path | None = None, env: dict | None = None,
               timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python device_runner.py ...`` as a local process (``python`` may be a qemu command line)."""
    cmd = [*python, str(RUNNER), "--model", str(model), "--inputs", str(inputs), "--threads", str(threads),
           "--warmup", str(warmup), "--runs", str(runs)]
    if json_out:
        cmd += ["--json", str(json_out)]
    if outputs:
        cmd += ["--outputs", str(outputs)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def last_line(text: str, default: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else default


def run_here(prep: Prepared, threads: int = 1) -> np.ndarray:
    """The raw outputs of this machine's interpreter on ``prep``'s inputs (the parity reference)."""
    with tempfile.TemporaryDirectory(prefix="egeunet-ref-") as d:
        np.save(Path(d) / "x.npy", prep.inputs)
        r = run_runner([sys.executable], prep.path, Path(d) / "x.npy", threads, outputs=Path(d) / "y.npy")
        if r.returncode != 0:
            raise RuntimeError(f"local reference run failed: {last_line(r.stderr, 'no message')}")
        return np.load(Path(d) / "y.npy")


def to_float(raw: np.ndarray, rt) -> np.ndarray:
    """Raw outputs (N, ...) -> dequantised output maps (N, size, size) float32."""
    y = raw.astype(np.float32)
    if rt.spec.output_quant is not None:
        scale, zp = rt.spec.output_quant
        y = (y - zp) * scale
    return y.reshape(len(raw), rt.pre.size, rt.pre.size)


def to_probs(raw: np.ndarray, rt) -> np.ndarray:
    from egeunet.preprocess import sigmoid

    y = to_float(raw, rt)
    return sigmoid(y) if rt.spec.output_kind == "logits" else y


def parity(raw: np.ndarray, ref: np.ndarray, rt) -> dict:
    """How far a device's outputs are from the reference run's: max |Δ| of the dequantised
    output (logits or probabilities, as the manifest says), mask IoU, bit identity."""
    if raw.shape != ref.shape:
        raise RuntimeError(f"device outputs have shape {raw.shape}, the reference {ref.shape}")
    a, b = to_float(raw, rt), to_float(ref, rt)
    ma, mb = to_probs(raw, rt) >= rt.pre.threshold, to_probs(ref, rt) >= rt.pre.threshold
    union = np.logical_or(ma, mb).sum()
    return {"max_abs_diff": float(np.abs(a - b).max()), "mask_iou": float(np.logical_and(ma, mb).sum() / union)
            if union else 1.0, "bit_identical": bool(np.array_equal(raw, ref)), "images": int(len(raw)),
            "output": rt.spec.output_kind}


def scores(raw: np.ndarray, rt, masks, torch_masks) -> dict:
    """Dice against the truth and agreement with PyTorch, as the bench reports them."""
    from egeunet.metrics import SegmentationMeter

    gt, agree = SegmentationMeter(), SegmentationMeter()
    for prob, m, tm in zip(to_probs(raw, rt), masks, torch_masks):
        pred = prob >= rt.pre.threshold
        gt.update(pred, m > 0)
        agree.update(pred, tm)
    return {"dice_pooled": gt.pooled()["dice"], "dice_per_image": gt.per_image_mean()["dice"],
            "iou_vs_torch": agree.pooled()["iou"], "dice_vs_torch": agree.pooled()["dice"]}


def percentiles(times_ms: list[float]) -> dict:
    t = np.asarray(times_ms)
    return {"p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
            "p99": float(np.percentile(t, 99)), "runs": int(len(t))}


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
