"""Check (issue #7): gradient accuracy of the split step against one process. One ISIC batch of
8 at 256x256; float64 autograd of the plain model as the reference; float32 gradients of
`egeunet-train`'s step in one process at 2 threads, at 1 thread, and split over 2 processes of
1 thread (`egeunet.split_step.SplitStep`). Prints each one's largest error, relative to each
tensor's largest reference value.

    python docs/experiments/2026-11-27/split_gradients.py
"""
import torch
from egeunet.data import SegmentationFolder, channel_stats, resolve_data_root
from egeunet.graphed_step import set_lr
from egeunet.preprocess import Preprocessing
from egeunet.split_step import SplitStep
from egeunet.train import build_model_and_optimizer, random_affines, training_batch, _eager_step, deep_supervision_loss
from egeunet.model.egeunet import EGEUNet, EGEUNetConfig
if __name__ == "__main__":
    split = SegmentationFolder(resolve_data_root(None)).load_split("train", 256, limit=16, progress=False)
    images, masks = torch.from_numpy(split.images), torch.from_numpy(split.masks)
    mean, std = channel_stats(split.images); pre = Preprocessing(size=256, mean=mean, std=std)
    idx, theta = torch.arange(8), random_affines(8, torch.Generator().manual_seed(0))
    x, y = training_batch(images, masks, idx, pre, None, theta, compiled=False)
    from egeunet.model.egeunet import interpolate_bilinear
    torch.manual_seed(0); ref = EGEUNet(EGEUNetConfig()).double().train(); ref.upsample_loss_map = interpolate_bilinear
    deep_supervision_loss(ref(x.double()), y.double()).backward()
    grads = {}
    for th in (2, 1):
        torch.set_num_threads(th); torch.manual_seed(0)
        m, o, l = build_model_and_optimizer(); set_lr(o, 0.0)
        xb, yb = training_batch(images, masks, idx, pre, None, theta)
        _eager_step(m, o, xb, yb, l); grads[f"one process, {th} threads"] = [p.grad.clone() for p in m.parameters()]
    torch.set_num_threads(1); torch.manual_seed(0)
    m, o, l = build_model_and_optimizer(); set_lr(o, 0.0)
    with SplitStep(m, o, l, images, masks, pre, 2, 1) as s:
        s.step(idx, theta)
    grads["split, 2 x 1 thread"] = [p.grad.clone() for p in m.parameters()]
    for name, g in grads.items():
        err = max(((a.double() - r.grad).abs().max() / r.grad.abs().max().clamp_min(1e-12)).item() for a, r in zip(g, ref.parameters()))
        print(f"{name}: largest gradient error vs float64, relative to each tensor's largest: {err:.2e}")
