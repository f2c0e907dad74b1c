"""Set-up shared by this folder's later experiment scripts (run them from the repository root:
``python docs/experiments/2026-11-26/NAME.py``, which puts this folder on the import path)."""
import statistics
import time

import torch

from egeunet.host_memory import keep_freed_memory
from egeunet.train import build_model_and_optimizer


def median_ms(f, n: int = 40, warmup: int = 5) -> float:
    """Median wall time of ``f()`` in ms over ``n`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def training_setup(threads: int = 2, size: int = 256, batch: int = 8):
    """(model, optimizer, loss, x, y): `egeunet-train`'s set-up (allocator included) with one fixed
    random batch, seeded, as every whole-step comparison here uses."""
    torch.set_num_threads(threads)
    keep_freed_memory()
    torch.manual_seed(0)
    model, opt, loss_fn = build_model_and_optimizer()
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()
    return model, opt, loss_fn, x, y


def alternate(variants: dict, step, rounds: int, steps: int) -> dict:
    """Whole-step A/B: ``variants`` maps a name to a function that switches the model to that
    variant; ``step()`` runs one training step. Each variant warms up, then they take turns,
    ``rounds`` rounds of ``steps`` steps; prints each round's median ms and speed-up over the
    first variant, then the median speed-ups; returns them per variant."""
    def median_step(name, n):
        variants[name]()
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            step()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    for name in variants:
        median_step(name, 4)
    first = next(iter(variants))
    ratios = {name: [] for name in variants}
    for r in range(rounds):
        ms = {name: median_step(name, steps) for name in variants}
        print(f"round {r}: " + ", ".join(f"{name} {t * 1e3:.1f} ms ({ms[first] / t:.3f}x)" for name, t in ms.items()),
              flush=True)
        for name, t in ms.items():
            ratios[name].append(ms[first] / t)
    print("median speed-up: " + ", ".join(f"{name} {statistics.median(v):.3f}x" for name, v in ratios.items()))
    return ratios
