"""Evaluate a model on a split at the model's input size (the paper's protocol)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from egeunet.data import SplitArrays
from egeunet.metrics import SegmentationMeter, bootstrap_ci
from egeunet.preprocess import Preprocessing


@functools.lru_cache(maxsize=8)
def _normalisation(pre: Preprocessing, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # cached per device: a per-batch host-to-GPU copy would stall the GPU training loop
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=device)
    return mean, 1.0 / torch.tensor(pre.std, dtype=torch.float32, device=device)


def images_to_tensor(images: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """uint8 (N, H, W, 3) tensor -> normalised float32 NCHW, the torch twin of
    :func:`egeunet.preprocess.normalize` (same arithmetic, checked by a test)."""
    mean, inv_std = _normalisation(pre, images.device)
    x = (images.float() - mean) * inv_std
    return x.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, images: np.ndarray, pre: Preprocessing, batch_size: int = 16) -> np.ndarray:
    """Probabilities (N, S, S) float32 for uint8 images (N, S, S, 3) already at the input size
    ``S = pre.size``; any other array is a ValueError (for one image of any size, use a runtime:
    :func:`egeunet.runtimes.open_runtime`)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (pre.size, pre.size, 3):
        raise ValueError(f"expected uint8 images (N, {pre.size}, {pre.size}, 3) at the model's input size, got "
                         f"{images.dtype} {images.shape}; resize with egeunet.preprocess.resize_image first")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = np.empty(images.shape[:3], np.float32)
    try:
        for start in range(0, len(images), batch_size):
            batch = np.ascontiguousarray(images[start:start + batch_size])  # torch refuses negative strides
            x = images_to_tensor(torch.from_numpy(batch).to(device), pre)
            out[start:start + len(x)] = torch.sigmoid(model(x))[:, 0].cpu().numpy()
    finally:
        model.train(was_training)
    return out


def evaluate_arrays(model: torch.nn.Module, split: SplitArrays, pre: Preprocessing, batch_size: int = 16,
                    bootstrap: int = 0) -> dict:
    """``{"pooled": {...}, "per_image": {...}, "n_images": N}`` at threshold ``pre.threshold``;
    with ``bootstrap=B`` also ``"ci95"`` (percentile bootstrap over images, B resamples) and
    ``"images"`` (id and Dice of every image)."""
    meter = SegmentationMeter()
    for start in range(0, len(split), 64):
        prob = predict_probabilities(model, split.images[start:start + 64], pre, batch_size)
        meter.update(prob >= pre.threshold, split.masks[start:start + 64] > 0)
    return _result(meter, split, bootstrap)


def evaluate_runtime(runtime, split: SplitArrays, bootstrap: int = 0, progress: bool = False) -> dict:
    """:func:`evaluate_arrays` for any model file opened by :func:`egeunet.runtimes.open_runtime`
    (ONNX, TFLite, Core ML on macOS): the file as deployed, its own preprocessing and threshold
    from its manifest, one image at a time. ``split`` decoded at the file's input size."""
    if split.images.shape[1:3] != (runtime.pre.size, runtime.pre.size):
        raise ValueError(f"images decoded at {split.images.shape[2]}x{split.images.shape[1]}, but the model takes "
                         f"{runtime.pre.size}x{runtime.pre.size}")
    meter = SegmentationMeter()
    items = zip(split.images, split.masks)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(split), desc=f"{runtime.name}", unit="img", leave=False)
    for image, mask in items:
        meter.update((runtime.predict(image) >= runtime.pre.threshold)[None], (mask > 0)[None])
    return _result(meter, split, bootstrap)


def _result(meter: SegmentationMeter, split: SplitArrays, bootstrap: int) -> dict:
    result = meter.result()
    if bootstrap:
        result["ci95"] = bootstrap_ci(meter.image_cms, n_boot=bootstrap)
        result["images"] = [{"id": i, "dice": s["dice"], "iou": s["iou"]} for i, s in zip(split.ids, meter.per_image)]
    return result
