"""Parity of an exported artifact with PyTorch fp32 on held-out images."""

from __future__ import annotations

import numpy as np
import torch

from egeunet.evaluate import images_to_tensor
from egeunet.metrics import confusion, scores
from egeunet.preprocess import Preprocessing, sigmoid


@torch.no_grad()
def reference_logits(model: torch.nn.Module, images: np.ndarray, pre: Preprocessing, batch: int = 16) -> np.ndarray:
    """PyTorch fp32 logits (N, S, S) for uint8 images (N, S, S, 3) at the input size."""
    model.eval()
    out = [model(images_to_tensor(torch.from_numpy(images[i:i + batch]), pre))[:, 0].numpy()
           for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float32)


def check_parity(runtime, images: np.ndarray, ref_logits: np.ndarray, source: str) -> dict:
    """``{"max_abs", "max_abs_prob", "iou", "dice", "n_images", "images"}``.

    ``max_abs`` is measured in the artifact's own output space (logits or probabilities);
    IoU and Dice are of the thresholded masks pooled over all images."""
    pre = runtime.pre
    max_abs = max_abs_prob = 0.0
    cm = np.zeros(4, np.int64)
    for img, ref in zip(images, ref_logits):
        raw = runtime.logits_or_probs(img)
        ref_raw = ref if runtime.spec.output_kind == "logits" else sigmoid(ref)
        prob = sigmoid(raw) if runtime.spec.output_kind == "logits" else raw
        ref_prob = sigmoid(ref)
        max_abs = max(max_abs, float(np.abs(raw - ref_raw).max()))
        max_abs_prob = max(max_abs_prob, float(np.abs(prob - ref_prob).max()))
        cm += confusion(prob >= pre.threshold, ref_prob >= pre.threshold)
    s = scores(cm)
    return {"max_abs": max_abs, "max_abs_prob": max_abs_prob, "iou": s["iou"], "dice": s["dice"],
            "n_images": int(len(images)), "images": source}
