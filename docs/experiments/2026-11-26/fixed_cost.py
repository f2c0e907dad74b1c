"""Experiment (issue #7): how much of an `egeunet-train` step is fixed cost per op.

The same step (every lever on, batch 8, fixed batch) on 32x32 images, where the arithmetic
all but vanishes, and on 256x256, at 1 and 2 threads: forward, loss, backward, AdamW, medians
of 20 steps. Then a `torch.profiler` pass over three 32x32 steps at 1 thread: aten calls per
step and the mean time per oneDNN convolution call.

    python docs/experiments/2026-11-26/fixed_cost.py
"""
import statistics, time
import torch
from torch.profiler import ProfilerActivity, profile
from egeunet.host_memory import keep_freed_memory
from egeunet.train import build_model_and_optimizer

keep_freed_memory()


def phases(threads, size):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, opt, loss_fn = build_model_and_optimizer()
    x = torch.randn(8, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(8, 1, size, size) > 0.5).float()
    t = {k: [] for k in ("forward", "loss", "backward", "AdamW")}
    for it in range(25):
        t0 = time.perf_counter(); out = model(x); t1 = time.perf_counter(); loss = loss_fn(out, y)
        t2 = time.perf_counter(); opt.zero_grad(set_to_none=True); loss.backward(); t3 = time.perf_counter()
        opt.step(); t4 = time.perf_counter()
        if it >= 5:
            for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[k].append(v * 1e3)
    med = {k: statistics.median(v) for k, v in t.items()}
    print(f"{threads} thread(s), {size}x{size}: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
          + f" ms; step {sum(med.values()):.1f} ms", flush=True)
    return model, opt, loss_fn, x, y


for threads, size in ((1, 32), (2, 32), (1, 256), (2, 256)):
    model, opt, loss_fn, x, y = phases(threads, size)

model, opt, loss_fn, x, y = phases(1, 32)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(3):
        loss = loss_fn(model(x), y); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
calls = sum(1 for e in prof.events() if e.name.startswith("aten::"))
print(f"aten calls per 32x32 step (views included): {calls / 3:.0f}")
for e in prof.key_averages():
    if e.key in ("aten::mkldnn_convolution", "aten::convolution_backward"):
        print(f"{e.key}: {e.count / 3:.0f} calls per step, {e.self_cpu_time_total / e.count:.0f} us each (self)")
