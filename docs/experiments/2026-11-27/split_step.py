"""Experiment (issue #7): the training step with its batch split over two processes of one
thread each (`egeunet.split_step.SplitStep`), against one process with two threads
(`egeunet-train` before), batch 8 at 256x256 from the ISIC train images in memory.

1. Same step: from the same weights, one step of each on the same batch and augmentation
   draws (rate 0, so the weights stay and the gradients can be compared): losses, and the
   largest gradient difference relative to the largest gradient.
2. Whole steps (batch built, forward, loss, backward, AdamW), the two alternating in one
   main process (ROUNDS rounds of STEPS steps; the split step's helper waits meanwhile).

    python docs/experiments/2026-11-27/split_step.py [ROUNDS] [STEPS] [DATA]
"""
import statistics
import sys
import time

import torch

from egeunet.data import SegmentationFolder, channel_stats, resolve_data_root
from egeunet.graphed_step import set_lr
from egeunet.host_memory import keep_freed_memory
from egeunet.preprocess import Preprocessing
from egeunet.split_step import SplitStep
from egeunet.train import build_model_and_optimizer, random_affines, training_batch, _eager_step

if __name__ == "__main__":
    ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    root = resolve_data_root(sys.argv[3] if len(sys.argv) > 3 else None)
    split = SegmentationFolder(root).load_split("train", 256, limit=256, progress=False)
    images, masks = torch.from_numpy(split.images), torch.from_numpy(split.masks)
    mean, std = channel_stats(split.images)
    pre = Preprocessing(size=256, mean=mean, std=std)
    keep_freed_memory()
    gen = torch.Generator().manual_seed(0)

    torch.manual_seed(0)
    one = build_model_and_optimizer()
    torch.manual_seed(0)
    two = build_model_and_optimizer()
    torch.set_num_threads(1)
    splitter = SplitStep(*two, images, masks, pre, processes=2, threads=1)

    def single_step(idx, theta):
        torch.set_num_threads(2)
        x, y = training_batch(images, masks, idx, pre, None, theta)
        return _eager_step(one[0], one[1], x, y, one[2]).item()

    def split_step(idx, theta):
        torch.set_num_threads(1)
        return splitter.step(idx, theta)

    idx, theta = torch.arange(8), random_affines(8, gen)
    for opt in (one[1], two[1]):
        set_lr(opt, 0.0)
        opt.param_groups[0]["weight_decay"] = 0.0
    la, lb = single_step(idx, theta), split_step(idx, theta)
    ga, gb = one[1].flat_gradients, two[1].flat_gradients
    print(f"same step: loss one process {la:.6f}, split {lb:.6f}; max |gradient difference| "
          f"{(ga - gb).abs().max().item():.2e} (largest gradient {ga.abs().max().item():.2e})", flush=True)
    for opt in (one[1], two[1]):
        set_lr(opt, 1e-3)
        opt.param_groups[0]["weight_decay"] = 1e-2

    variants = {"one process, 2 threads (before)": single_step, "split: 2 processes x 1 thread (now)": split_step}
    cursor = [0]

    def batch():
        idx = (torch.arange(8) + cursor[0]) % len(images)
        cursor[0] += 8
        return idx, random_affines(8, gen)

    def median_step(f, n):
        ts = []
        for _ in range(n):
            b = batch()
            t = time.perf_counter()
            f(*b)
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    for f in variants.values():
        median_step(f, 4)
    ratios = []
    for r in range(ROUNDS):
        ms = {name: median_step(f, STEPS) for name, f in variants.items()}
        a, b = ms.values()
        ratios.append(a / b)
        print(f"round {r}: " + ", ".join(f"{name} {t * 1e3:.1f} ms" for name, t in ms.items()) + f" ({a / b:.3f}x)",
              flush=True)
    print(f"median speed-up of the split step: {statistics.median(ratios):.3f}x")
    splitter.close()
