"""Segmentation metrics, two ways.

*Pooled*: one confusion matrix over every pixel of the split (the EGE-UNet paper's
protocol). *Per image*: the metric of each image, then the mean. For an image whose truth
and prediction are both empty, Dice and IoU are 1 (perfect agreement), sensitivity is 1;
for an all-lesion truth predicted all-lesion, specificity is 1. With no image at all every
metric is NaN (nothing was measured).

Masks are boolean arrays; 0/1 and 0/255 integer or float arrays are taken as such. Anything
else (probabilities, label maps, JPEG-noisy masks) is refused with a ValueError: threshold
it first (``prob >= 0.5``, ``mask > 127``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRICS = ("dice", "iou", "acc", "sens", "spec")


def as_binary_mask(mask: np.ndarray, what: str = "mask") -> np.ndarray:
    """A boolean mask from a boolean array, or a numeric one holding only 0 and 1 (or 0 and 255);
    anything else is a ValueError (a probability map counted "lesion wherever > 0" is wrong)."""
    a = np.asarray(mask)
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{what}: expected a boolean mask, got an array of {a.dtype}")
    fg = a != 0
    values = a[fg]
    if values.size and not ((values == 1).all() or (values == 255).all()):
        odd = values[(values != 1) & (values != 255)]
        sample = odd[0] if odd.size else "both 1 and 255"
        raise ValueError(f"{what} is not a binary mask ({a.dtype} with values other than 0 and 1, or 0 and 255: "
                         f"{sample}); threshold it first, e.g. prob >= 0.5 or mask > 127")
    return fg


def confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(tp, fp, fn, tn) as int64 for binary masks of equal shape (see :func:`as_binary_mask`)."""
    pred = as_binary_mask(pred, "prediction")
    truth = as_binary_mask(truth, "truth")
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    return _counts(pred, truth)


def _counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(tp, fp, fn, tn) of boolean arrays already checked to be of one shape."""
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
        """``pred`` and ``truth``: binary masks (N, H, W) or (H, W) (see :func:`as_binary_mask`)."""
        pred = as_binary_mask(pred, "prediction")
        truth = as_binary_mask(truth, "truth")
        if pred.shape != truth.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
        if pred.ndim not in (2, 3):
            raise ValueError(f"expected masks (H, W) or a stack (N, H, W), got shape {pred.shape}")
        if pred.ndim == 2:
            pred, truth = pred[None], truth[None]
        for p, t in zip(pred, truth):
            cm = _counts(p, t)  # checked above, once for the stack
            self.pooled_cm += cm
            self.image_cms.append(cm)
            self.per_image.append(scores(cm))

    def __len__(self) -> int:
        return len(self.per_image)

    def pooled(self) -> dict[str, float]:
        """Metrics of the summed confusion matrix; NaN with no image (as :meth:`per_image_mean`)."""
        if not self.per_image:
            return {k: float("nan") for k in METRICS}
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
    if len(image_cms) == 0:
        raise ValueError("bootstrap_ci needs the confusion matrix of at least one image")
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got n_boot={n_boot}, level={level}")
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
