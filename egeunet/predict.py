"""Segment image files with any model file: mask PNG at the original size, an overlay with
the lesion contour, and the lesion area in percent."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from egeunet.preprocess import ImageReadError, image_files_in, read_image
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


def output_paths(out: str | Path, name: str) -> tuple[Path, Path]:
    """(mask, overlay) paths of the image whose outputs are named ``name``."""
    return Path(out) / f"{name}_mask.png", Path(out) / f"{name}_overlay.png"


def collect_named_images(inputs: list[str | Path], out: str | Path | None = None) -> dict[Path, str]:
    """{image file: the name its outputs take in the output folder}, files as given and folders
    expanded (sorted, recursive, hidden files and folders skipped). The name is the file's path under the folder it was found in
    without the extension (DIR/a/x.jpg -> "a/x"), or its stem when given directly; images that
    would share a name keep their extension (x.jpg -> "x.jpg", x.png -> "x.png"). Names that
    clash even so are refused here, before anything is written: one output would overwrite
    another. With ``out`` (the output folder): a folder scan skips ``out`` where it lies inside
    the folder (a re-run must not take the last run's masks for photos), and an output that
    would overwrite an input image is refused."""
    found: dict[Path, Path] = {}  # file -> its path relative to the folder given (or its name)
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            skip = _nested_output_folder(p, out)
            for f in image_files_in(p):
                if skip is None or not f.resolve().is_relative_to(skip):
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
    if out is not None:
        _refuse_outputs_over_inputs(names, out)
    return names


def _nested_output_folder(folder: Path, out: str | Path | None) -> Path | None:
    """``out`` resolved where it lies strictly inside ``folder`` (its files are earlier outputs,
    not photos), else None: an output folder that is the input folder itself holds the photos."""
    if out is None:
        return None
    out, folder = Path(out).resolve(), folder.resolve()
    return out if out != folder and out.is_relative_to(folder) else None


def _refuse_outputs_over_inputs(names: dict[Path, str], out: str | Path) -> None:
    """Before anything is written: no mask or overlay may land on an input image (with --out the
    input folder, x.png's x_mask.png would replace a photo named x_mask.png)."""
    inputs = {str(f.resolve()).casefold(): f for f in names}  # casefold: one file on macOS / Windows
    for f, name in names.items():
        for what, path in zip(("mask", "overlay"), output_paths(out, name)):
            photo = inputs.get(str(path.resolve()).casefold())
            if photo is not None:
                raise ValueError(f"{photo} is an input image: the {what} of {f} would be written over it; "
                                 "choose another --out")


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
    mask_path, overlay_path = output_paths(out, name or path.stem)
    _save_pngs({mask_path: mask.astype(np.uint8) * 255, overlay_path: overlay(image, mask)})
    return Prediction(path, mask_path, overlay_path, 100.0 * float(mask.mean()), (image.shape[1], image.shape[0]))


class OutputWriteError(OSError):
    """An output that cannot be written (disk full, no permission); the message names it."""


def _save_pngs(arrays: dict[Path, np.ndarray]) -> None:
    """Writes every PNG to a temporary file first and renames them only once all are complete:
    a failure or Ctrl-C part-way leaves neither a half-written file nor a mask without its
    overlay (only the renames, which need no space, come after the last write)."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, arr in arrays.items():
            _make_folder(path.parent, path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the pid: two runs into one folder
            staged.append((tmp, path))
            try:
                Image.fromarray(arr).save(tmp, format="PNG")
            except OSError as e:
                raise OutputWriteError(f"{path}: cannot write it ({e.strerror or e})") from None
        for tmp, path in staged:
            tmp.replace(path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def _make_folder(folder: Path, path: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputWriteError(f"{path}: cannot write it (making {folder}: {e.strerror or e})") from None


def predict_many(runtime: Runtime, files: list[str | Path] | dict[Path, str], out: str | Path, progress: bool = True):
    """Yields (path, Prediction or error message) for each image file; never stops on a bad file.
    ``files``: image files and folders (expanded as :func:`collect_named_images` does), or a
    mapping of each file to its output name, as that function gives (so that two files with the
    same stem never overwrite each other's outputs)."""
    names = ({Path(f): n for f, n in files.items()} if isinstance(files, dict)
             else collect_named_images(list(files), out))
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
