"""Segmentation metrics, two ways.

*Pooled*: one confusion matrix over every pixel of the split (the EGE-UNet paper's
protocol). *Per image*: the metric of each image, then the mean. For an image whose truth
and prediction are both empty, Dice and IoU are 1 (perfect agreement), sensitivity is 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRICS = ("dice", "iou", "acc", "sens", "spec")


def confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(tp, fp, fn, tn) as int64 for boolean arrays of equal shape."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = pred.size - tp - fp - fn
    return np.array([tp, fp, fn, tn], dtype=np.int64)


def _ratio(num: float, den: float, empty: float) -> float:
    return float(num) / float(den) if den else empty


def scores(cm: np.ndarray) -> dict[str, float]:
    tp, fp, fn, tn = (int(v) for v in cm)
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, 1.0),
        "iou": _ratio(tp, tp + fp + fn, 1.0),
        "acc": _ratio(tp + tn, tp + fp + fn + tn, 1.0),
        "sens": _ratio(tp, tp + fn, 1.0),
        "spec": _ratio(tn, tn + fp, 1.0),
    }


@dataclass
class SegmentationMeter:
    """Accumulates predictions image by image; ``result()`` gives pooled and per-image means."""

    pooled_cm: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))
    per_image: list[dict[str, float]] = field(default_factory=list)
    image_cms: list[np.ndarray] = field(default_factory=list)

    def update(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """``pred`` and ``truth``: boolean (N, H, W) or (H, W)."""
        pred = np.asarray(pred, dtype=bool)
        truth = np.asarray(truth, dtype=bool)
        if pred.shape != truth.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
        if pred.ndim == 2:
            pred, truth = pred[None], truth[None]
        for p, t in zip(pred, truth):
            cm = confusion(p, t)
            self.pooled_cm += cm
            self.image_cms.append(cm)
            self.per_image.append(scores(cm))

    def __len__(self) -> int:
        return len(self.per_image)

    def pooled(self) -> dict[str, float]:
        return scores(self.pooled_cm)

    def per_image_mean(self) -> dict[str, float]:
        if not self.per_image:
            return {k: float("nan") for k in METRICS}
        return {k: float(np.mean([s[k] for s in self.per_image])) for k in METRICS}

    def result(self) -> dict:
        return {"pooled": self.pooled(), "per_image": self.per_image_mean(), "n_images": len(self)}


def bootstrap_ci(image_cms: list[np.ndarray], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap over images: resample the images with replacement, recompute the
    pooled metrics (from summed confusion matrices) and the per-image means.
    Returns ``{"pooled": {metric: [lo, hi]}, "per_image": {...}, "n_boot", "level"}``."""
    cms = np.stack(image_cms).astype(np.int64)  # (N, 4)
    per = {k: np.array([scores(cm)[k] for cm in cms]) for k in METRICS}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(cms), size=(n_boot, len(cms)))
    pooled_samples = {k: np.empty(n_boot) for k in METRICS}
    for b in range(n_boot):
        s = scores(cms[idx[b]].sum(0))
        for k in METRICS:
            pooled_samples[k][b] = s[k]
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {
        "pooled": {k: [float(v) for v in np.percentile(pooled_samples[k], q)] for k in METRICS},
        "per_image": {k: [float(v) for v in np.percentile(per[k][idx].mean(1), q)] for k in METRICS},
        "n_boot": n_boot, "level": level,
    }
