"""Segmentation data sets laid out as ``images/<id>.jpg``, ``masks/<id>.png`` and
``splits.csv`` (``id,split``), the layout of ``shared/data/isic2018`` and
``shared/data/kvasir-seg``.

A split is decoded once into uint8 arrays kept in memory (2594 ISIC images at 256x256 are
~0.5 GB) so that training does no per-step JPEG decoding or Python per-pixel work.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from egeunet.preprocess import IMAGE_SUFFIXES, ImageReadError, read_image, resize_image, resize_mask_nearest

ENV_VAR = "EGEUNET_DATA"
log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A problem with a data folder; the message names the file and says what is wrong."""


def default_data_candidates() -> list[Path]:
    """Where a data root is looked for when neither --data nor $EGEUNET_DATA is given."""
    repo = Path(__file__).resolve().parent.parent
    return [Path.cwd() / "shared/data/isic2018", Path.cwd().parent / "shared/data/isic2018",
            repo.parent / "shared/data/isic2018", repo / "shared/data/isic2018"]


def resolve_data_root(data: str | os.PathLike | None = None, required: bool = True,
                      trained_on: dict | None = None) -> Path | None:
    """--data wins, then $EGEUNET_DATA, then the folder the weights were trained on
    (``trained_on``: their sidecar's ``data`` entry) where it still exists, then a
    ``shared/data/isic2018`` beside the checkout.

    Without the ``trained_on`` step, weights trained on another data set (Kvasir-SEG, your own)
    were evaluated, calibrated and parity-checked on ISIC whenever the ISIC folder sat beside
    the checkout, named only in a trailing line. A folder other than the training one that was
    not asked for with --data is warned about."""
    explicit = data is not None
    if data is None:
        data = os.environ.get(ENV_VAR) or None
    if data is not None:
        root = Path(data).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: data folder does not exist (from --data or ${ENV_VAR})")
        if not explicit:
            _warn_if_not_trained_on(root, trained_on, f"${ENV_VAR}")
        return root
    own, recorded = (trained_on or {}).get("data_root"), (trained_on or {}).get("data_fingerprint")
    # the training folder only while it holds the recorded data: the same path may since hold other data
    if own and (Path(own) / "splits.csv").is_file() and (not recorded or _fingerprint_of(Path(own)) == recorded):
        log.info("[data] no --data: using %s, the folder these weights were trained on", own)
        return Path(own)
    cands = default_data_candidates()
    for cand in cands:
        if (cand / "splits.csv").is_file():
            _warn_if_not_trained_on(cand, trained_on, "the default folder")
            return cand.resolve()
    if required:
        looked = ", ".join(dict.fromkeys(os.path.relpath(c.resolve()) for c in cands))
        raise DataError(f"no data folder given and none found (looked in {looked}): pass --data DIR or set "
                        f"${ENV_VAR} (a folder with images/, masks/ and splits.csv). The ISIC 2018 data is "
                        "licensed and not in this repository: see the README's Data section")
    return None


def _fingerprint_of(root: Path) -> str | None:
    """``root``'s data fingerprint, None where the folder cannot be read as a data folder."""
    try:
        return SegmentationFolder(root).fingerprint()
    except (OSError, DataError):
        return None


def _warn_if_not_trained_on(root: Path, trained_on: dict | None, how: str) -> None:
    """Warn when ``root`` (not chosen with --data) is not the data the weights were trained on.
    Compared by fingerprint, not path: the shipped weights' folder was elsewhere on another
    machine, and the same files anywhere are the same data. An unreadable folder is the
    caller's to report."""
    recorded = (trained_on or {}).get("data_fingerprint")
    if not recorded or not (root / "splits.csv").is_file():
        return
    found = _fingerprint_of(root)
    if found is not None and found != recorded:
        log.warning("[data] WARNING: measuring on %s (%s), not on the data these weights were trained on (%s); "
                    "pass --data to choose", root, how, trained_on.get("data_root", "unknown"))


@dataclass
class SplitArrays:
    """One split decoded: images (N, S, S, 3) uint8, masks (N, S, S) uint8 in {0, 1}."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


class SegmentationFolder:
    """A data root: ``images/``, ``masks/`` and ``splits.csv``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: data folder does not exist")
        for sub in ("images", "masks"):
            if not (self.root / sub).is_dir():
                raise DataError(f"{self.root / sub}: missing folder (expected images/, masks/ and splits.csv)")
        self.splits = self._read_splits(self.root / "splits.csv")
        self._warned_orientation = False

    @staticmethod
    def _read_splits(path: Path) -> dict[str, list[str]]:
        if not path.is_file():
            raise DataError(f"{path}: missing file (a CSV with columns id,split)")
        try:
            # utf-8-sig: Excel writes a byte-order mark, which would otherwise stick to the 'id' header
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8 CSV") from None
        out: dict[str, list[str]] = {}
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or not {"id", "split"} <= set(reader.fieldnames):
            raise DataError(f"{path}: needs a header 'id,split', found {reader.fieldnames}")
        first_seen: dict[str, tuple[int, str]] = {}
        for line, row in enumerate(reader, start=2):
            if not row["id"] or not row["split"]:
                raise DataError(f"{path}:{line}: empty id or split")
            sid, split = row["id"].strip(), row["split"].strip()
            # an image in two splits is trained on and then scored (or picks the best epoch) as
            # unseen; listed twice in one split it weighs double
            if sid in first_seen:
                first_line, first_split = first_seen[sid]
                raise DataError(f"{path}:{line}: id {sid!r} is listed again (line {first_line} has it as "
                                f"{first_split}, this line as {split}); list each image once")
            first_seen[sid] = (line, split)
            out.setdefault(split, []).append(sid)
        return out

    def ids(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DataError(f"{self.root / 'splits.csv'}: no split {split!r} (has: {', '.join(sorted(self.splits))})")
        return self.splits[split]

    def image_path(self, sample_id: str) -> Path:
        for suffix in IMAGE_SUFFIXES:
            p = self.root / "images" / f"{sample_id}{suffix}"
            if p.is_file():
                return p
        raise DataError(f"{self.root / 'images'}: no image for id {sample_id!r} (listed in splits.csv)")

    def mask_path(self, sample_id: str) -> Path:
        for suffix in (".png", ".bmp", ".tif", ".gif", ".jpg"):
            p = self.root / "masks" / f"{sample_id}{suffix}"
            if p.is_file():
                return p
        raise DataError(f"{self.root / 'masks'}: no mask for image {self.image_path(sample_id).name}")

    def read_pair(self, sample_id: str, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 (S, S, 3), mask uint8 (S, S) in {0, 1}) through the preprocessing contract."""
        ipath, mpath = self.image_path(sample_id), self.mask_path(sample_id)
        try:
            image = read_image(ipath)
        except ImageReadError as e:
            raise DataError(str(e)) from None
        try:
            with Image.open(mpath) as m:
                # a palette mask holds class indices (VOC-style: 0 background, 1 lesion, drawn in
                # any colour); its grey level would make a dark lesion colour background
                mask = np.asarray(m) if m.mode == "P" else np.asarray(m.convert("L"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{mpath}: not a readable mask image ({e.__class__.__name__})") from None
        mask = self._mask_in_image_frame(mask, ipath, mpath, image.shape[:2])
        if mask.shape != image.shape[:2]:
            raise DataError(f"{mpath}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                            f"{ipath.name} is {image.shape[1]}x{image.shape[0]}")
        mask = (resize_mask_nearest(mask, size) >= _lesion_level(mask, mpath)).astype(np.uint8)
        return resize_image(image, size), mask

    def _mask_in_image_frame(self, mask: np.ndarray, ipath: Path, mpath: Path, shown_hw: tuple) -> np.ndarray:
        """The mask turned the way the image is shown. ``read_image`` applies the image's EXIF
        orientation (as every runtime does); a mask drawn on the stored pixels must turn with it,
        else it lies rotated under its image (an error for non-square images, silently wrong for
        square ones). Where the sizes tell which frame the mask is in (a 90-degree orientation of
        a non-square image) that decides; otherwise the mask is taken as drawn on the image as
        shown (what EXIF-aware annotation tools save), with one warning per folder."""
        with Image.open(ipath) as im:
            orientation = im.getexif().get(0x0112)
            stored_hw = (im.height, im.width)
        if orientation not in _EXIF_TRANSPOSE:
            return mask
        if mask.shape == stored_hw and mask.shape != tuple(shown_hw):
            return np.asarray(Image.fromarray(mask).transpose(_EXIF_TRANSPOSE[orientation]))
        if mask.shape == tuple(shown_hw) and mask.shape == stored_hw and not self._warned_orientation:
            self._warned_orientation = True
            log.warning("%s has EXIF orientation %d: it is used as shown (turned), and its mask %s is taken as "
                        "drawn on the image as shown; if your masks were drawn on the stored pixels, rotate "
                        "them or strip the orientation (this folder may hold more such images)",
                        ipath, orientation, mpath.name)
        return mask

    def load_split(self, split: str, size: int = 256, limit: int | None = None, progress: bool = False) -> SplitArrays:
        if limit is not None and limit < 1:  # 0 would silently mean "all of them"
            raise DataError(f"limit must be >= 1 (or None for the whole split), not {limit}")
        ids = self.ids(split)[:limit] if limit else self.ids(split)
        images = np.empty((len(ids), size, size, 3), np.uint8)
        masks = np.empty((len(ids), size, size), np.uint8)
        it = ids
        if progress:
            from tqdm import tqdm

            it = tqdm(ids, desc=f"decode {split}", unit="img", leave=False)
        for i, sid in enumerate(it):
            images[i], masks[i] = self.read_pair(sid, size)
        return SplitArrays(list(ids), images, masks)

    def fingerprint(self) -> str:
        """sha256 over splits.csv and every file's name and size: cheap, and changes with the data."""
        h = hashlib.sha256((self.root / "splits.csv").read_bytes())
        for sub in ("images", "masks"):
            for p in sorted((self.root / sub).iterdir()):
                if p.is_symlink() and not p.exists():  # a dangling link (stat() failed the run after
                    continue  # decoding); if splits.csv lists it, reading it names it
                h.update(f"{sub}/{p.name}:{p.stat().st_size}\n".encode())
        return h.hexdigest()


# EXIF orientation -> the transpose that shows the stored pixels upright (Pillow's exif_transpose)
_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                   6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _lesion_level(mask: np.ndarray, path: Path) -> int:
    """The grey level from which a mask pixel is lesion: 128 for 0/255 masks (halfway, so that
    JPEG noise around 0 and 255 falls on the right side), 1 for masks stored as 0/1 (a common
    convention, and what egeunet.metrics takes; "> 127" read them as empty). Not for JPEG:
    its noise around black is 0s and 1s too."""
    lossless = path.suffix.lower() not in (".jpg", ".jpeg")
    return 1 if lossless and mask.max() == 1 else 128


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0..255 units) of uint8 images (N, H, W, 3), in float64."""
    flat = images.reshape(-1, 3)
    mean = np.zeros(3)
    sq = np.zeros(3)
    for start in range(0, len(flat), 1 << 22):  # chunks keep float64 copies small
        chunk = flat[start:start + (1 << 22)].astype(np.float64)
        mean += chunk.sum(0)
        sq += (chunk * chunk).sum(0)
    n = len(flat)
    mean /= n
    std = np.sqrt(sq / n - mean * mean)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)
