"""Segment image files with any model file: mask PNG at the original size, an overlay with
the lesion contour, and the lesion area in percent."""

from __future__ import annotations

import logging
from collections import Counter
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


def collect_named_images(inputs: list[str | Path]) -> dict[Path, str]:
    """{image file: the name its outputs take in the output folder}, files as given and folders
    expanded (sorted, recursive). The name is the file's path under the folder it was found in
    without the extension (DIR/a/x.jpg -> "a/x"), or its stem when given directly; images that
    would share a name keep their extension (x.jpg -> "x.jpg", x.png -> "x.png"). Names that
    clash even so are refused here, before anything is written: one output would overwrite
    another."""
    found: dict[Path, Path] = {}  # file -> its path relative to the folder given (or its name)
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES):
                found.setdefault(f, f.relative_to(p))
        else:
            found.setdefault(p, Path(p.name))  # missing or unreadable files are reported when read
    stems = {f: rel.with_suffix("").as_posix() for f, rel in found.items()}
    shared = Counter(s.casefold() for s in stems.values())
    names = {f: stems[f] if shared[stems[f].casefold()] == 1 else rel.as_posix() for f, rel in found.items()}
    seen: dict[str, Path] = {}
    for f, name in names.items():
        other = seen.setdefault(name.casefold(), f)  # casefold: x.png and X.png clash on macOS / Windows
        if other != f:
            raise ValueError(f"{other} and {f} would both be written as {name}_mask.png in the output folder; "
                             "give their folder instead, or predict them in separate runs")
    return names


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """Translucent lesion fill plus a 2-pixel contour (mask minus its erosion)."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(OVERLAY_RGB, np.float32)
    m = Image.fromarray(mask.astype(np.uint8) * 255)
    eroded = np.asarray(m.filter(ImageFilter.MinFilter(5))) > 0
    out[mask & ~eroded] = CONTOUR_RGB
    return out.round().astype(np.uint8)


def predict_file(runtime: Runtime, path: str | Path, out: str | Path, name: str | None = None) -> Prediction:
    """Writes ``out/NAME_mask.png`` and ``out/NAME_overlay.png``; ``name`` (default: the file's
    stem) may hold sub-folders, as :func:`collect_named_images` gives."""
    path, out = Path(path), Path(out)
    image = read_image(path)
    mask = runtime.predict_mask(image)
    name = name or path.stem
    mask_path = out / f"{name}_mask.png"
    overlay_path = out / f"{name}_overlay.png"
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(mask.astype(np.uint8) * 255, mask_path)
    _save_png(overlay(image, mask), overlay_path)
    return Prediction(path, mask_path, overlay_path, 100.0 * float(mask.mean()), (image.shape[1], image.shape[0]))


def _save_png(arr: np.ndarray, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    tmp.replace(path)


def predict_many(runtime: Runtime, files: list[str | Path] | dict[Path, str], out: str | Path, progress: bool = True):
    """Yields (path, Prediction or error message) for each image file; never stops on a bad file.
    ``files``: image files and folders (expanded as :func:`collect_named_images` does), or a
    mapping of each file to its output name, as that function gives (so that two files with the
    same stem never overwrite each other's outputs)."""
    names = ({Path(f): n for f, n in files.items()} if isinstance(files, dict)
             else collect_named_images(list(files)))
    out = Path(out)
    it = list(names)
    if progress and len(it) > 1:
        from tqdm import tqdm

        it = tqdm(it, desc="predict", unit="img")
    for path in it:
        try:
            yield path, predict_file(runtime, path, out, names.get(path))
        except ImageReadError as e:
            yield path, str(e)
