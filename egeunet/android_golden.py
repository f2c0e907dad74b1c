"""Golden vectors for the Android demo's Kotlin contract (``android_demo/contract``).

Written from the *live* Python contract (:mod:`egeunet.preprocess`, :mod:`egeunet.predict`,
:meth:`egeunet.runtimes.base.Runtime.prepare`), read by the Kotlin JUnit tests, so the app
and the toolkit cannot drift apart: change the Python contract without the Kotlin side and
``tests/test_android_contract.py`` fails.

Format (no library needed to read it): ``key=value`` ``.properties`` files and raw
little-endian arrays, gzip-compressed.

- ``contract.properties``: size, threshold, overlay alpha and colours, ``borderline_eps``.
- ``maps/<map>.logits.f32.gz``: S x S float32, a model output (logits);
  ``maps/<map>.probs.f32.gz``: ``sigmoid(logits)`` as Python computes it.
- ``cases/<name>/case.properties``: width, height, ``output_map`` (which map is the model
  output), ``area_percent``, and the SHA-256 of every output array:
  ``input_uint8`` (S x S x 3 uint8, what an int8 .tflite takes, NHWC batch 1),
  ``mask`` (H x W uint8 0/1 at the original size), ``overlay`` (H x W x 3 uint8,
  :func:`egeunet.predict.overlay`), ``resized_probs`` (H x W float32, the probabilities
  resized by Pillow's 'F' bilinear resampler) and ``borderline`` (H x W uint8 0/1: pixels
  whose resized probability lies within ``borderline_eps`` of the threshold, the only ones
  where a last-bit difference in float32 tanh may flip the mask).
- ``cases/<name>/image.rgb.gz``: H x W x 3 uint8, the decoded image (EXIF already applied);
  ``mask.gz`` and ``borderline.gz`` (small); unless written ``compact``, also
  ``input_uint8.gz`` and ``overlay.gz`` (so a mismatch can be located, not only detected).
- ``orientation/``: a small image and what ``ImageOps.exif_transpose`` makes of it for
  each EXIF orientation 1..8.

Run: ``python -m egeunet.android_golden OUT_DIR [--isic DATA_DIR]``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from egeunet import predict
from egeunet.preprocess import Preprocessing, probabilities_to_mask, resize_image, sigmoid

log = logging.getLogger(__name__)

BORDERLINE_EPS = 1e-6
# (name, width, height): up-sampling, down-sampling by non-integer factors, mixed (either pass
# order of Pillow 13), one axis unchanged, 1x1.
SYNTHETIC_CASES = (("up_37x23", 37, 23), ("mixed_517x61", 517, 61), ("mixed_129x300", 129, 300),
                   ("down_400x331", 400, 331), ("down_900x700", 900, 700), ("same_width_256x97", 256, 97),
                   ("single_1x1", 1, 1))
# Real images are squeezed / padded to odd sizes so the resampler is exercised both ways.
ISIC_SIZES = ((256, 256), (611, 407), (199, 250))


def contract() -> Preprocessing:
    """The shipped weights' contract (size, mean, std, threshold), read from their sidecar."""
    import json

    from egeunet.model.checkpoint import PRETRAINED, sidecar_path

    return Preprocessing.from_dict(json.loads(sidecar_path(PRETRAINED).read_text())["preprocessing"])


def synthetic_image(w: int, h: int, seed: int) -> np.ndarray:
    """Skin-like background, a darker lesion-like ellipse, fine stripes, one noisy patch: integer
    arithmetic only, so every platform writes the same bytes (and little noise, so it compresses)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    base = np.stack([200 - (40 * y) // max(h, 1), 150 + (30 * x) // max(w, 1), 130 + (20 * (x + y)) // max(w + h, 1)], -1)
    inside = (4 * (2 * x - w) ** 2 * h * h + 9 * (2 * y - h) ** 2 * w * w) < (w * w * h * h)
    base = base - inside[..., None] * np.array([90, 80, 60])
    stripes = ((x // 2 + y // 3) % 3 == 0) * (x > w // 2) * 70  # fine detail: exercises antialiasing
    noise = rng.integers(-30, 31, size=(h, w, 3)) * ((x < 24) & (y < 24))[..., None]  # one noisy patch
    return np.clip(base - stripes[..., None] + noise, 0, 255).astype(np.uint8)


def synthetic_logits(size: int, seed: int) -> np.ndarray:
    """A soft blob with noise, quantised to 1/64 (float64 + - * / only: platform-independent)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy, a, b = size * 0.45, size * 0.55, size * 0.3, size * 0.22
    r2 = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2
    ripple = ((x * 7 + y * 13) % 17 - 8) / 8.0  # periodic texture: many values near 0, compresses
    logit = 6.0 * (1.0 - r2) + ripple
    logit[:32, :32] += rng.integers(-64, 65, size=(32, 32)) / 16.0  # one noisy patch
    return (np.round(np.clip(logit, -12.0, 12.0) * 64.0) / 64.0).astype(np.float32)


def logits_from_mask(mask: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Model-like logits from a ground-truth mask: soft edges (a box blur), noise."""
    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127
    soft = m.astype(np.float64) * 2.0 - 1.0
    k = 9
    pad = np.pad(soft, k // 2, mode="edge")
    c = np.cumsum(np.cumsum(pad, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)))
    soft = (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)
    noise = np.random.default_rng(seed).normal(0.0, 0.5, size=(size, size))
    return (5.0 * soft + noise).astype(np.float32)


class _PackOnly:
    """``Runtime.prepare`` of the live runtime interface, for an int8 .tflite's input spec."""

    def __init__(self, pre: Preprocessing) -> None:
        from egeunet.runtimes.base import IOSpec

        self.pre = pre
        self.spec = IOSpec("image", (1, pre.size, pre.size, 3), "uint8", "NHWC", "pixels",
                           "logits", (1, pre.size, pre.size, 1), "float32", "logits", (1.0, 0), None)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        from egeunet.runtimes.base import Runtime

        return Runtime.prepare(self, image)


def _bytes(arr: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def _read(path: Path, dtype: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.dtype(dtype).newbyteorder("<"))


def _write(path: Path, arr: np.ndarray, dtype: str) -> None:
    data = _bytes(arr, dtype)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(data)  # mtime=0, no name: the same arrays give the same bytes


def _props(path: Path, props: dict) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


def write_case(folder: Path, name: str, image: np.ndarray, map_name: str, pre: Preprocessing,
               compact: bool = False) -> None:
    """One case: image -> model input bytes; the output map ``maps/<map_name>`` -> mask,
    overlay, area. Every output array gets a SHA-256 in ``case.properties``; unless
    ``compact``, the arrays themselves too (for diagnosing a mismatch)."""
    h, w = image.shape[:2]
    logits = _read(folder.parent / "maps" / f"{map_name}.logits.f32.gz", "f4").reshape(pre.size, pre.size)
    d = folder / name
    d.mkdir(parents=True)
    x = _PackOnly(pre).prepare(image)
    if x.shape != (1, pre.size, pre.size, 3) or x.dtype != np.uint8:
        raise RuntimeError(f"{name}: Runtime.prepare gave {x.shape} {x.dtype}, expected uint8 NHWC")
    if not np.array_equal(x[0], resize_image(image, pre.size)):
        raise RuntimeError(f"{name}: Runtime.prepare differs from resize_image")
    probs = sigmoid(logits)
    mask = probabilities_to_mask(probs, (h, w), pre)
    resized = probs if (h, w) == probs.shape else np.asarray(
        Image.fromarray(probs).resize((w, h), Image.BILINEAR), dtype=np.float32)
    if not np.array_equal(resized >= pre.threshold, mask):
        raise RuntimeError(f"{name}: probabilities_to_mask no longer resizes with Pillow BILINEAR on 'F'")
    borderline = np.abs(resized.astype(np.float64) - pre.threshold) <= BORDERLINE_EPS
    outputs = {"input_uint8": (x[0], "u1"), "mask": (mask, "u1"), "borderline": (borderline, "u1"),
               "overlay": (predict.overlay(image, mask), "u1"), "resized_probs": (resized, "f4")}
    _write(d / "image.rgb.gz", image, "u1")
    props = {"name": name, "width": w, "height": h, "output_map": map_name,
             "area_percent": repr(100.0 * float(mask.mean())),
             "mask_pixels": int(mask.sum()), "borderline_pixels": int(borderline.sum())}
    for key, (arr, dtype) in outputs.items():
        props[f"{key}_sha256"] = hashlib.sha256(_bytes(arr, dtype)).hexdigest()
        if key in ("mask", "borderline") or (not compact and key != "resized_probs"):
            _write(d / f"{key}.gz", arr, dtype)
    _props(d / "case.properties", props)


def write_map(folder: Path, name: str, logits: np.ndarray) -> None:
    """A model output map (logits) and the probabilities Python derives from it."""
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / f"{name}.logits.f32.gz", logits, "f4")
    _write(folder / f"{name}.probs.f32.gz", sigmoid(logits), "f4")


def write_orientation(folder: Path) -> None:
    """A 5x3 image tagged with each EXIF orientation, as ``ImageOps.exif_transpose`` shows it."""
    d = folder / "orientation"
    d.mkdir(parents=True)
    src = synthetic_image(5, 3, seed=99)
    _write(d / "source.rgb.gz", src, "u1")
    props = {"width": 5, "height": 3}
    for o in range(1, 9):
        im = Image.fromarray(src)
        exif = im.getexif()
        exif[0x0112] = o
        im.info["exif"] = exif.tobytes()
        out = np.asarray(ImageOps.exif_transpose(im), dtype=np.uint8)
        _write(d / f"o{o}.rgb.gz", out, "u1")
        props[f"o{o}.width"], props[f"o{o}.height"] = out.shape[1], out.shape[0]
    _props(d / "orientation.properties", props)


def write_golden(out: str | Path, isic: str | Path | None = None, n_isic: int = 3, compact: bool = False) -> Path:
    """Write all vectors to ``out`` (replaced if it exists). Synthetic cases always; with
    ``isic`` (an ISIC 2018 folder) a few test-split images at several sizes too: those are
    CC BY-NC and must never be committed. ``compact``: model input and overlay as SHA-256
    only (the copy committed under ``android_demo/contract/src/test/resources/golden``)."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pre = contract()
    _props(out / "contract.properties", {
        "size": pre.size, "threshold": repr(pre.threshold),
        "overlay_alpha": repr(predict.overlay.__defaults__[0]),
        "overlay_rgb": ",".join(map(str, predict.OVERLAY_RGB)),
        "contour_rgb": ",".join(map(str, predict.CONTOUR_RGB)),
        "borderline_eps": repr(BORDERLINE_EPS),
    })
    cases = out / "cases"
    write_map(out / "maps", "synthetic", synthetic_logits(pre.size, seed=100))
    for i, (name, w, h) in enumerate(SYNTHETIC_CASES):
        write_case(cases, name, synthetic_image(w, h, seed=i), "synthetic", pre, compact)
    if isic is not None:
        from egeunet.data import SegmentationFolder
        from egeunet.preprocess import read_image

        folder = SegmentationFolder(isic)
        for j, sid in enumerate(folder.ids("test")[:n_isic]):
            image = read_image(folder.image_path(sid))
            gt = np.asarray(Image.open(folder.mask_path(sid)).convert("L")) > 127
            w, h = ISIC_SIZES[j % len(ISIC_SIZES)]
            if (h, w) != image.shape[:2]:
                image = np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC), dtype=np.uint8)
            write_map(out / "maps", f"isic_{j}", logits_from_mask(gt, pre.size, seed=j))
            write_case(cases, f"isic_{j}_{w}x{h}", image, f"isic_{j}", pre, compact)
    write_orientation(out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="folder to write (replaced)")
    p.add_argument("--isic", help="ISIC 2018 folder: add real test images (never commit those vectors)")
    p.add_argument("--compact", action="store_true", help="output arrays as SHA-256 only (the committed copy)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("[golden] wrote %s", write_golden(a.out, a.isic, compact=a.compact))


if __name__ == "__main__":
    main()
