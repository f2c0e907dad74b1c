"""Segment image files with any model file: mask PNG at the original size, an overlay with
the lesion contour, and the lesion area in percent."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from egeunet.preprocess import IMAGE_SUFFIXES, ImageReadError, read_image
from egeunet.runtimes.base import Runtime

log = logging.getLogger(__name__)

OVERLAY_RGB = (255, 64, 32)  # lesion fill colour
CONTOUR_RGB = (255, 255, 0)


@dataclass
class Prediction:
    source: Path
    mask_path: Path
    overlay_path: Path
    area_percent: float
    size: tuple[int, int]  # (width, height)


def collect_images(inputs: list[str | Path]) -> list[Path]:
    """Files as given, folders expanded (sorted, recursive) to their image files."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(p)  # missing or unreadable files are reported when read
    return files


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """Translucent lesion fill plus a 2-pixel contour (mask minus its erosion)."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(OVERLAY_RGB, np.float32)
    m = Image.fromarray(mask.astype(np.uint8) * 255)
    eroded = np.asarray(m.filter(ImageFilter.MinFilter(5))) > 0
    out[mask & ~eroded] = CONTOUR_RGB
    return out.round().astype(np.uint8)


def predict_file(runtime: Runtime, path: Path, out: Path) -> Prediction:
    image = read_image(path)
    mask = runtime.predict_mask(image)
    out.mkdir(parents=True, exist_ok=True)
    mask_path = out / f"{path.stem}_mask.png"
    overlay_path = out / f"{path.stem}_overlay.png"
    _save_png(mask.astype(np.uint8) * 255, mask_path)
    _save_png(overlay(image, mask), overlay_path)
    return Prediction(path, mask_path, overlay_path, 100.0 * float(mask.mean()), (image.shape[1], image.shape[0]))


def _save_png(arr: np.ndarray, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    tmp.replace(path)


def predict_many(runtime: Runtime, files: list[Path], out: Path, progress: bool = True):
    """Yields (path, Prediction or error message) for each file; never stops on a bad file."""
    it = files
    if progress and len(files) > 1:
        from tqdm import tqdm

        it = tqdm(files, desc="predict", unit="img")
    for path in it:
        try:
            yield path, predict_file(runtime, path, out)
        except ImageReadError as e:
            yield path, str(e)
