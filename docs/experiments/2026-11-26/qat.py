"""Quantization-aware fine-tuning (QAT) for the full-integer TFLite file: does it help?

Issue #6 lists it as a lever; every earlier session left it untried. This throwaway script
answers one question with numbers: after fine-tuning the shipped weights for a few epochs
with int8 rounding simulated where the int8-full .tflite rounds, does that file agree better
with PyTorch (and with the truth), and does fp32 Dice hold?

The simulation mirrors ``egeunet/export/tf_graph.py`` op by op (default model only): every op
the int8-full export runs in int8 rounds its output to a per-tensor int8 grid whose range is
the 95th percentile of per-image extremes over calibration images (as
``tflite_convert.calibrate`` sets them); GELU, RSQRT and ADD stay float (the export's float
ops) and their outputs are rounded where an int8 op reads them; conv weights are rounded
per output channel, symmetric (-127..127), after the exporter's folds; constants multiplied
in (LayerNorm / GroupNorm scales, the GHPA weight maps) per tensor. Rounding passes the
gradient straight through inside the range (``torch.fake_quantize_per_tensor_affine``).

    python docs/experiments/2026-11-26/qat.py check            # the simulation vs the real int8-full file
    python docs/experiments/2026-11-26/qat.py diagnose         # which kind of rounding costs agreement
    python docs/experiments/2026-11-26/qat.py train EPOCHS LR OUT.safetensors [CONSISTENCY]
    python docs/experiments/2026-11-26/qat.py eval WEIGHTS.safetensors   # the simulation on the test split
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from egeunet.data import SegmentationFolder, SplitArrays
from egeunet.export.calibration import _evenly_spaced
from egeunet.model.checkpoint import load_checkpoint, save_checkpoint
from egeunet.model.deploy import ONE_MEAN_MAX_PIXELS
from egeunet.model.egeunet import GHPA, upsample_logits_for_training
from egeunet.train import deep_supervision_loss, random_affines, apply_affines

DATA = Path(__file__).resolve().parents[4] / "shared/data/isic2018"
PERCENTILE = 95.0
FLOAT_KINDS: set[str] = set()  # `diagnose` keeps one kind of rounding site float at a time
CONSISTENCY = 0.0  # train's optional 5th argument: weight of the rounded-vs-unrounded output loss
CLIP = 5.0  # gradient norm; a safety net, reported per epoch


class Rounding:
    """Per-call-site int8 ranges: ``observe`` records per-image extremes, ``quant`` rounds."""

    def __init__(self) -> None:
        self.mode = "off"
        self.i = 0
        self.lo: dict[int, list[np.ndarray]] = {}
        self.hi: dict[int, list[np.ndarray]] = {}
        self.params: dict[int, tuple[float, int]] = {}

    def start(self) -> None:
        self.i = 0

    def __call__(self, t: torch.Tensor, kind: str = "activation") -> torch.Tensor:
        i, self.i = self.i, self.i + 1
        if self.mode == "off" or (self.mode == "quant" and kind in FLOAT_KINDS):
            return t
        if self.mode == "observe":
            flat = t.detach().flatten(1)
            self.lo.setdefault(i, []).append(flat.amin(1).numpy())
            self.hi.setdefault(i, []).append(flat.amax(1).numpy())
            return t
        scale, zp = self.params[i]
        return torch.fake_quantize_per_tensor_affine(t, scale, zp, -128, 127)

    def fix_ranges(self) -> None:
        """The exporter's rule: percentile of per-image extremes, the range holding 0."""
        self.params = {}
        for i in self.lo:
            lo = min(0.0, float(np.percentile(np.concatenate(self.lo[i]), 100 - PERCENTILE)))
            hi = max(0.0, float(np.percentile(np.concatenate(self.hi[i]), PERCENTILE)))
            scale = max(hi - lo, 1e-8) / 255.0
            zp = int(np.clip(round(-128 - lo / scale), -128, 127))
            self.params[i] = (scale, zp)
        self.lo, self.hi = {}, {}


def rsqrt_rounded(var_float: torch.Tensor, var_rounded: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """rsqrt of the rounded variance forward, its gradient taken at the unrounded one. A
    variance rounded to 0 gives rsqrt(eps) = 1000 forward (as the int8 file does), but the
    derivative there (-0.5 eps^-1.5) would blow the fine-tuning up."""
    exact = torch.rsqrt(var_float + eps)
    return exact + (torch.rsqrt(var_rounded + eps) - exact).detach()


def weight_q(w: torch.Tensor, rounding: Rounding) -> torch.Tensor:
    """Per-output-channel symmetric int8 (TFLite's conv weights)."""
    if rounding.mode != "quant" or "weights" in FLOAT_KINDS:
        return w
    scale = (w.detach().abs().flatten(1).amax(1) / 127.0).clamp_min(1e-12)
    return torch.fake_quantize_per_channel_affine(w, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -127, 127)


def const_q(c: torch.Tensor, rounding: Rounding) -> torch.Tensor:
    """A constant operand of an int8 MUL: per tensor, asymmetric, range holding 0."""
    if rounding.mode != "quant" or "weights" in FLOAT_KINDS:
        return c
    lo, hi = min(0.0, float(c.detach().min())), max(0.0, float(c.detach().max()))
    scale = max(hi - lo, 1e-12) / 255.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return torch.fake_quantize_per_tensor_affine(c, scale, zp, -128, 127)


class QuantSim:
    """EGE-UNet's inference graph as the int8-full .tflite computes it (NCHW here)."""

    def __init__(self, model, pre) -> None:
        self.m, self.q = model, Rounding()
        self.mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
        self.inv_std = (1.0 / torch.tensor(pre.std, dtype=torch.float64)).float().view(1, 3, 1, 1)

    def conv(self, x, conv, in_scale=None, in_shift=None):
        w, b = conv.weight, conv.bias
        if in_scale is not None:  # the GAB tail LayerNorm's affine, folded as the exporter does
            b = b + w[:, :, 0, 0] @ in_shift
            w = w * in_scale[None, :, None, None]
        y = F.conv2d(x, weight_q(w, self.q), b, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
        return self.q(y)

    def layer_norm(self, x, norm, affine=True):
        q = self.q
        centred = q(x - q(x.mean(1, keepdim=True), "centring"), "centring")
        var = q(centred * centred, "variance").mean(1, keepdim=True)
        y = q(centred * q(rsqrt_rounded(var, q(var, "variance"), norm.eps), "rsqrt"), "normalised")
        return q(y * const_q(norm.weight.view(1, -1, 1, 1), q), "norm affine") + norm.bias.view(1, -1, 1, 1) if affine else y

    def spatial_mean(self, x, kind):
        if x.shape[2] * x.shape[3] <= ONE_MEAN_MAX_PIXELS:
            return self.q(x.mean((2, 3), keepdim=True), kind)
        return self.q(self.q(x.mean(3, keepdim=True), kind).mean(2, keepdim=True), kind)

    def group_norm(self, x, gn):
        q = self.q
        c, g = gn.num_channels, gn.num_groups
        group = torch.arange(c) // (c // g)
        avg = ((group[:, None] == group[None, :]).float() / (c // g))[:, :, None, None]
        mean = q(F.conv2d(self.spatial_mean(x, "centring"), avg), "centring")
        centred = q(x - mean, "centring")
        var = F.conv2d(self.spatial_mean(q(centred * centred, "variance"), "variance"), avg) + gn.eps
        scale = q(q(rsqrt_rounded(var, q(var, "variance")), "rsqrt") * const_q(gn.weight.view(1, -1, 1, 1), q), "norm affine")
        return q(centred * scale, "normalised") + gn.bias.view(1, -1, 1, 1)

    def gelu(self, x):
        return self.q(F.gelu(x))  # float GELU; rounded where the next int8 op reads it

    def seq(self, x, seq):
        for layer in seq:
            x = self.gelu(x) if isinstance(layer, torch.nn.GELU) else self.conv(x, layer)
        return x

    def ghpa(self, x, block):
        q = self.q
        c, h, w = x.shape[1] // 4, x.shape[2], x.shape[3]
        xy, zx, zy = block.attention_maps(c, h, w)
        x1, x2, x3, x4 = torch.chunk(q(self.layer_norm(x, block.norm1)), 4, 1)
        x = q(torch.cat([q(x1 * const_q(xy, q), "ghpa map product"), q(x2 * const_q(zx, q), "ghpa map product"),
                       q(x3 * const_q(zy, q), "ghpa map product"), self.seq(x4, block.dw)], 1))
        return self.seq(q(self.layer_norm(x, block.norm2)), block.ldw)

    def gab(self, x_high, x_low, mask, block):
        q = self.q
        x_high = F.interpolate(self.conv(x_high, block.pre_project), size=x_low.shape[2:], mode="bilinear",
                               align_corners=True)
        highs, lows = torch.chunk(x_high, 4, 1), torch.chunk(x_low, 4, 1)
        fused = [self.conv(q(self.layer_norm(q(torch.cat([h, lo, mask], 1)), norm)), conv)
                 for (norm, conv), h, lo in zip(block.groups, highs, lows)]
        tail_norm, tail_conv = block.tail_conv
        y = self.layer_norm(q(torch.cat(fused, 1)), tail_norm, affine=False)
        return self.conv(y, tail_conv, tail_norm.weight, tail_norm.bias)

    def stage(self, x, block):
        return self.ghpa(x, block) if isinstance(block, GHPA) else self.conv(x, block)

    def __call__(self, pixels: torch.Tensor):
        """pixels (B, 3, S, S) float 0..255 -> (aux logits list, final logits at S/2... S)."""
        q, m = self.q, self.m
        q.start()
        x = q(q(pixels - self.mean) * self.inv_std)
        skips, out = [], x
        for i in range(5):
            out = self.group_norm(self.stage(out, m.encoder[i]), m.encoder_norms[i])
            out = self.gelu(F.max_pool2d(q(out), 2, 2))
            skips.append(out)
        deep = self.gelu(self.stage(out, m.encoder[5]))
        out, aux = deep, []
        for i in range(5):
            out = self.group_norm(self.stage(out, m.decoder[i]), m.decoder_norms[i])
            if i > 0:
                out = F.interpolate(q(out), scale_factor=2.0, mode="bilinear", align_corners=True)
            out = self.gelu(out)
            a = self.conv(out, m.aux_heads[i])
            aux.append(a)
            skip = self.gab(deep, skips[4 - i], a, m.bridges[i])
            deep = skip
            out = q(out + skip)
        return aux, self.conv(out, m.head)  # head at S/2; resized to S below


def full_logits(sim, pixels):
    aux, head = sim(pixels)
    return F.interpolate(head, scale_factor=2.0, mode="bilinear", align_corners=True), aux


def calibrate(sim, images: np.ndarray, batch: int = 20) -> None:
    sim.q.mode = "observe"
    with torch.no_grad():
        for s in range(0, len(images), batch):
            sim(torch.from_numpy(images[s:s + batch]).permute(0, 3, 1, 2).float())
    sim.q.fix_ranges()
    sim.q.mode = "quant"


def masks_of(sim, images: np.ndarray, batch: int = 16) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            logits, _ = full_logits(sim, torch.from_numpy(images[s:s + batch]).permute(0, 3, 1, 2).float())
            out.append((logits[:, 0] > 0).numpy())
    return np.concatenate(out)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * (pred & truth).sum() / max(pred.sum() + truth.sum(), 1))


def evenly(n_total: int, n: int) -> list[int]:
    """The exporter's choice of calibration and parity images (evenly spaced over a split)."""
    return _evenly_spaced(list(range(n_total)), n)


def report(sim, calib, test, tag: str) -> dict:
    """Simulated int8 vs float (same weights) and vs the truth on the test images."""
    calibrate(sim, calib)
    q_masks = masks_of(sim, test.images)
    sim.q.mode = "off"
    f_masks = masks_of(sim, test.images)
    sim.q.mode = "quant"
    truth = test.masks.astype(bool)
    r = {"iou_int8_vs_float": iou(q_masks, f_masks), "dice_float": dice(f_masks, truth), "dice_int8": dice(q_masks, truth)}
    print(tag, {k: round(v, 4) for k, v in r.items()}, flush=True)
    return r


def main() -> None:
    torch.set_num_threads(2)
    model, pre, meta = load_checkpoint(sys.argv[2] if sys.argv[1] == "eval" else None)
    folder = SegmentationFolder(DATA)
    train = folder.load_split("train", 256)
    test = folder.load_split("test", 256)
    calib = train.images[evenly(len(train), 200)]
    sim = QuantSim(model, pre)
    if sys.argv[1] in ("check", "diagnose"):
        idx = evenly(len(test), 64)
        sub = SplitArrays([test.ids[i] for i in idx], test.images[idx], test.masks[idx])
        report(sim, calib, sub, "64 test images")
        if sys.argv[1] == "diagnose":
            for kind in ("weights", "activation", "centring", "variance", "rsqrt", "normalised", "norm affine",
                         "ghpa map product"):
                FLOAT_KINDS.clear()
                FLOAT_KINDS.add(kind)
                report(sim, calib, sub, f"{kind} kept float")
            FLOAT_KINDS.update(("centring", "variance", "rsqrt", "normalised", "norm affine"))
            report(sim, calib, sub, "all norm math kept float")
        return
    if sys.argv[1] == "eval":
        report(sim, calib, test, f"{sys.argv[2]}, 778 test images")
        return
    global CONSISTENCY
    CONSISTENCY = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    epochs, lr, out = int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
    report(sim, calib, test, "before")
    images, masks = torch.from_numpy(train.images), torch.from_numpy(train.masks)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for epoch in range(epochs):
        calibrate(sim, calib)  # ranges follow the weights, as a re-export would
        order = torch.randperm(len(images), generator=gen)
        t0, losses, norms = time.time(), [], []
        for s in range(0, len(order) - 7, 8):
            idx = order[s:s + 8]
            x = images[idx].permute(0, 3, 1, 2).float()
            y = masks[idx].float()[:, None]
            # as training does: rotated-in corners are the mean colour (0 after normalising)
            x, y = apply_affines(x - sim.mean, y, random_affines(len(idx), gen))
            x = x + sim.mean
            logits, aux = full_logits(sim, x)
            aux = [upsample_logits_for_training(a, y.shape[2:]) for a in aux]
            loss = deep_supervision_loss((aux, logits), y)
            if CONSISTENCY:
                # the same weights without rounding: their task loss, and the rounded output
                # pulled towards the unrounded one (what the mask IoU vs PyTorch measures)
                sim.q.mode = "off"
                f_logits, f_aux = full_logits(sim, x)
                sim.q.mode = "quant"
                f_aux = [upsample_logits_for_training(a, y.shape[2:]) for a in f_aux]
                loss = loss + deep_supervision_loss((f_aux, f_logits), y) + CONSISTENCY * \
                    F.binary_cross_entropy_with_logits(logits, torch.sigmoid(f_logits).detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
            opt.step()
            losses.append(loss.item())
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}, grad norm median {np.median(norms):.3g} "
              f"max {np.max(norms):.3g} (clipped at {CLIP}), {time.time() - t0:.0f} s", flush=True)
    model.eval()
    report(sim, calib, test, "after")
    save_checkpoint(out, model, pre, **{k: v for k, v in meta.items() if k not in ("weights_sha256",)},
                    qat={"epochs": epochs, "lr": lr, "consistency": CONSISTENCY, "from": "egeunet (shipped)"})
    print("saved", out)


if __name__ == "__main__":
    main()
