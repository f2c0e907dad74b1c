"""Child process of ``egeunet-bench``: load one model file with a given thread count, warm up,
time ``runs`` single-image inferences, print the times (ms) as JSON on stdout.

Each runtime runs in its own process so thread pools, allocators and caches of one
back end never disturb another's measurement."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="model file; omitted = the shipped PyTorch weights")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    a = p.parse_args(argv)

    from egeunet.runtimes import open_runtime

    rt = open_runtime(a.model, threads=a.threads)
    if rt.name == "torch":
        import torch

        torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (rt.pre.size, rt.pre.size, 3), dtype=np.uint8)
    x = rt.prepare(image)  # time the model, not the resize
    for _ in range(a.warmup):
        rt._run(x)
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        rt._run(x)
        times.append((time.perf_counter() - t0) * 1000.0)
    print(json.dumps({"runtime": rt.name, "threads": a.threads, "times_ms": times}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
