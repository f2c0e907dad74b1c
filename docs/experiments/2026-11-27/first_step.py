"""Experiment (issue #7): how long `egeunet-train`'s first CPU steps take, and what the direct
kernels' on-disk artifacts (`egeunet.model.fast_norms._load_or_compile`) save. Two steps are
timed: the second compiles the GHPA maps' kernels (`egeunet.model.fast_maps`: the first
training forward at an input size learns the maps' sizes).

Each measurement is a new process (what a user, or a test, starts) on one fresh inductor cache
folder: first a cold start (everything compiled), then warm starts with the artifacts, then
warm starts where every direct kernel goes through `torch._inductor.compile` and inductor's
own caches (the trainer before 2026-11-27; the first of those runs fills inductor's cache for
that path and is not a warm figure). One fixed batch: 8 x 3 x 256 x 256, 2 threads.

    python docs/experiments/2026-11-27/first_step.py [WARM_RUNS]
"""
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys, time
t0 = time.perf_counter()
import torch
import egeunet.model.fast_norms as fast_norms
import egeunet.train as T
from egeunet.host_memory import keep_freed_memory
if sys.argv[1] == "inductor-cache-only":
    import torch._inductor
    fast_norms._load_or_compile = lambda gm, tensors: torch._inductor.compile(gm, list(tensors))
torch.set_num_threads(2); keep_freed_memory(); torch.manual_seed(0)
model, opt, loss_fn = T.build_model_and_optimizer()
x = torch.randn(8, 3, 256, 256).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8, 1, 256, 256) > 0.5).float()
t1 = time.perf_counter(); loss = T.training_step(model, opt, x, y, loss_fn); t2 = time.perf_counter()
T.training_step(model, opt, x, y, loss_fn); t3 = time.perf_counter()
print(f"{t1 - t0:.1f} {t2 - t1:.2f} {t3 - t2:.2f} {loss:.6f}")
"""


def run(mode: str, cache: str) -> tuple[float, float, float, str]:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, check=True)
    setup, first, second, loss = out.stdout.split()[-4:]
    return float(setup), float(first), float(second), loss


warm = int(sys.argv[1]) if len(sys.argv) > 1 else 3
with tempfile.TemporaryDirectory() as cache:
    plan = ([("artifacts", "cold: empty inductor cache")] + [("artifacts", "warm, artifacts")] * warm
            + [("inductor-cache-only", "inductor's cache only, filling it (not a warm figure)")]
            + [("inductor-cache-only", "warm, inductor's cache only")] * warm)
    for mode, what in plan:
        t = time.time()
        setup, first, second, loss = run(mode, cache)
        print(f"{what:55s} import + build {setup:4.1f} s, first step {first:6.2f} s, second {second:6.2f} s, "
              f"loss {loss}", flush=True)
    n = len([f for f in os.listdir(os.path.join(cache, "egeunet_direct")) if f.endswith(".bin")])
    print(f"direct-kernel artifacts kept: {n}")
