"""Experiment (issue #7): the whole batch preparation (normalisation, sampling grid, bilinear and
nearest resampling) as one direct inductor kernel, against `training_batch`, and the parts of
the batch timed apart (synthetic uint8 images, batch 8 of 64, 2 threads, medians of 30). Only
the normalisation became a kernel (`egeunet.train._NORMALISE`).

    python docs/experiments/2026-11-27/batch_kernel.py
"""
import os, sys, torch, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import median_ms
from egeunet.model.fast_norms import DirectKernel, KernelGroup
from egeunet.train import training_batch, random_affines, affine_grid
from egeunet.preprocess import Preprocessing
torch.set_num_threads(2)
from egeunet.host_memory import keep_freed_memory; keep_freed_memory()
G = KernelGroup("aug")
def aug(images, masks, theta, mean, inv_std):
    x = ((images.float() - mean) * inv_std).permute(0, 3, 1, 2)
    grid = affine_grid(theta, x.shape[2], x.shape[3])
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(masks.float()[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x, y
K = DirectKernel(aug, G)
pre = Preprocessing()
print(pre)
gen = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (64, 256, 256, 3), dtype=torch.uint8)
masks = (torch.rand(64, 256, 256) > 0.5).to(torch.uint8)
idx = torch.randperm(64)[:8]
theta = random_affines(8, gen)
mean = torch.tensor(pre.mean, dtype=torch.float32); inv = 1.0 / torch.tensor(pre.std, dtype=torch.float32)
x0, y0 = training_batch(images, masks, idx, pre, gen, theta)
x1, y1 = K(images[idx], masks[idx], theta, mean, inv)
print("layouts", x1.stride(), x1.is_contiguous(memory_format=torch.channels_last), y1.shape, G.failed)
print("x max diff", (x1 - x0).abs().max().item(), "mask mismatches", (y1 != y0).sum().item(), "of", y0.numel())
print("training_batch %.3f ms" % median_ms(lambda: training_batch(images, masks, idx, pre, gen, theta), 30))
print("kernel %.3f ms" % median_ms(lambda: K(images[idx], masks[idx], theta, mean, inv), 30))
def batch_cl(images, masks, idx, theta):
    x = ((images[idx].float() - mean) * inv).permute(0, 3, 1, 2)
    grid = affine_grid(theta, 256, 256)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(masks[idx].float()[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x.contiguous(memory_format=torch.channels_last), y
x2, y2 = batch_cl(images, masks, idx, theta)
print("CL input: out CL?", F.grid_sample(((images[idx].float() - mean) * inv).permute(0, 3, 1, 2), affine_grid(theta,256,256), align_corners=False).is_contiguous(memory_format=torch.channels_last))
print("diff", (x2 - x0).abs().max().item(), (y2 != y0).sum().item())
print("batch_cl %.3f ms" % median_ms(lambda: batch_cl(images, masks, idx, theta), 30))
xx = ((images[idx].float() - mean) * inv).permute(0, 3, 1, 2); xn = xx.contiguous(); grid = affine_grid(theta, 256, 256)
print("grid_sample CL in %.3f, NCHW in %.3f ms" % (median_ms(lambda: F.grid_sample(xx, grid, align_corners=False), 30), median_ms(lambda: F.grid_sample(xn, grid, align_corners=False), 30)))
print("normalise %.3f, permute copy %.3f, to CL %.3f, grid %.3f, mask sample %.3f" % (
  median_ms(lambda: (images[idx].float() - mean) * inv, 30), median_ms(lambda: xx.contiguous(), 30), median_ms(lambda: xn.contiguous(memory_format=torch.channels_last), 30),
  median_ms(lambda: affine_grid(theta, 256, 256), 30), median_ms(lambda: F.grid_sample(masks[idx].float()[:, None], grid, mode="nearest", align_corners=False), 30)))
