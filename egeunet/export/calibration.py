"""Images for int8 calibration and for parity checks, all through the preprocessing contract.

Calibration: ``--calib DIR`` (any folder of images), else a deterministic sample of the
train split when a data root is found, else synthetic dermoscopy-like images made here
(with a loud warning: they only approximate real activation ranges).
Parity: held-out images (the test split) when a data root is found, else synthetic ones.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from egeunet.preprocess import ImageReadError, image_files_in, read_image, resize_image

log = logging.getLogger(__name__)


def _evenly_spaced(items: list, n: int) -> list:
    if n >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def images_from_folder(folder: str | Path, n: int, size: int) -> np.ndarray:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: calibration folder does not exist")
    files = image_files_in(folder)
    images, bad = [], 0
    for p in _evenly_spaced(files, n):
        try:
            images.append(resize_image(read_image(p), size))
        except ImageReadError as e:
            bad += 1
            log.warning("[calib] skipped %s", e)
    if not images:
        raise ValueError(f"{folder}: no readable image for calibration "
                         f"({len(files)} image-like files, {bad} unreadable)")
    if len(images) < n:  # it went on silently: ranges from a handful of images fit those images only
        log.warning("[calib] WARNING: only %d readable images in %s, fewer than the %d asked for (--num-calib): "
                    "int8 ranges from few images are less accurate on others", len(images), folder, n)
    return np.stack(images)


def images_from_split(data_root: str | Path, split: str, n: int, size: int) -> np.ndarray:
    from egeunet.data import SegmentationFolder

    folder = SegmentationFolder(data_root)
    ids = _evenly_spaced(folder.ids(split), n)
    return np.stack([resize_image(read_image(folder.image_path(i)), size) for i in ids])


def synthetic_dermoscopy(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Skin-toned backgrounds with a vignette, hair-like strokes and one darker, irregular,
    textured lesion each: a rough stand-in for dermoscopy when no real image is at hand."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    out = np.empty((n, size, size, 3), np.uint8)
    for k in range(n):
        skin = np.array([rng.uniform(170, 235), rng.uniform(120, 180), rng.uniform(100, 160)], np.float32)
        lesion = skin * rng.uniform(0.25, 0.6) + rng.normal(0, 8, 3)
        gx, gy = rng.normal(0, 20, 2)
        img = skin + (gx * xx + gy * yy)[..., None]
        cx, cy = rng.uniform(-0.15, 0.15, 2)
        a, b = rng.uniform(0.12, 0.35, 2)
        ang = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
        v = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
        theta = np.arctan2(v, u)
        wobble = 1 + 0.15 * np.sin(3 * theta + rng.uniform(0, 6)) + 0.08 * np.sin(7 * theta + rng.uniform(0, 6))
        r = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
        inside = np.clip((1.1 - r) * 6, 0, 1)[..., None]  # soft border
        texture = rng.normal(0, 12, (size // 8, size // 8, 1)).repeat(8, 0).repeat(8, 1)
        img = img * (1 - inside) + (lesion + texture) * inside
        vignette = 1 - 0.6 * np.clip(np.sqrt(xx ** 2 + yy ** 2) - 0.35, 0, None)[..., None] * 3
        img = img * np.clip(vignette, 0.2, 1)
        for _ in range(rng.integers(0, 6)):  # hairs
            x0, y0, x1, y1 = rng.uniform(0, size, 4).astype(int)
            t = np.linspace(0, 1, size * 2)
            px = np.clip((x0 + (x1 - x0) * t).astype(int), 0, size - 1)
            py = np.clip((y0 + (y1 - y0) * t + 10 * np.sin(t * 6)).astype(int), 0, size - 1)
            img[py, px] = img[py, px] * 0.3
        img += rng.normal(0, 4, img.shape)
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def calibration_images(calib: str | Path | None, n: int, size: int, data_root: str | Path | None) -> tuple[np.ndarray, str]:
    """(uint8 images (N, S, S, 3), where they came from)."""
    if calib is not None:
        return images_from_folder(calib, n, size), f"folder {calib}"
    if data_root is not None:
        return images_from_split(data_root, "train", n, size), f"train split of {data_root}"
    log.warning("[calib] WARNING: no --calib folder and no data root found: calibrating int8 on %d SYNTHETIC "
                "images. Ranges will be less accurate; pass --calib DIR with real dermoscopy images.", n)
    return synthetic_dermoscopy(n, size, seed=1), "synthetic"


def parity_images(n: int, size: int, data_root: str | Path | None) -> tuple[np.ndarray, str]:
    if data_root is not None:
        return images_from_split(data_root, "test", n, size), f"test split of {data_root}"
    log.warning("[verify] no data root found: checking parity on %d synthetic images", n)
    return synthetic_dermoscopy(n, size, seed=2), "synthetic"
