"""Experiment (issue #7): `training_batch` with the normalisation as one compiled kernel
(`compiled=True`, what `egeunet-train` runs on the CPU) against the eager batch: equal bit for
bit, channels_last; then each timed four times, alternating (synthetic uint8 images, batch 8 of 64,
2 threads, medians of 40).

    python docs/experiments/2026-11-27/batch_normalisation.py
"""
import os, sys, torch
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import median_ms
from egeunet.train import training_batch, random_affines
from egeunet.preprocess import Preprocessing
torch.set_num_threads(2)
from egeunet.host_memory import keep_freed_memory; keep_freed_memory()
pre = Preprocessing(mean=(180.0, 150.0, 140.0), std=(40.0, 45.0, 50.0))
gen = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (64, 256, 256, 3), dtype=torch.uint8)
masks = (torch.rand(64, 256, 256) > 0.5).to(torch.uint8)
idx = torch.randperm(64)[:8]; theta = random_affines(8, gen)
a = training_batch(images, masks, idx, pre, gen, theta, compiled=False)
b = training_batch(images, masks, idx, pre, gen, theta, compiled=True)
print("equal", torch.equal(a[0], b[0]), torch.equal(a[1], b[1]), b[0].is_contiguous(memory_format=torch.channels_last))
for c in (False, True) * 4:
    print("compiled" if c else "eager", "%.3f ms" % median_ms(lambda: training_batch(images, masks, idx, pre, gen, theta, compiled=c), 40))
