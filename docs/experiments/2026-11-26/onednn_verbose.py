"""Experiment (issue #7): how much of a training step is oneDNN's own primitive execution?

Runs `egeunet-train`'s step (every lever on, 2 threads, batch 8, fixed batch) in a child
process with ONEDNN_VERBOSE=2, which logs each primitive's creation (cache hit or miss) and
execution time, and sums them over STEPS steady-state steps; then times the same steps
without logging, and profiles them (torch.profiler) to see the same convolutions from PyTorch. Run from the repository root: python docs/experiments/2026-11-26/onednn_verbose.py [STEPS]
"""
import os, subprocess, sys, time, statistics
from collections import Counter, defaultdict

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
CHILD = """
import os, sys, time, torch
from egeunet.host_memory import keep_freed_memory
from egeunet.train import build_model_and_optimizer, training_step
torch.set_num_threads(2); keep_freed_memory(); torch.manual_seed(0)
model, opt, loss_fn = build_model_and_optimizer()
x = torch.randn(8, 3, 256, 256).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8, 1, 256, 256) > 0.5).float()
for _ in range(4): training_step(model, opt, x, y, loss_fn)
sys.stdout.flush(); os.write(1, b"=== STEADY\\n")
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); training_step(model, opt, x, y, loss_fn)
    sys.stdout.flush(); os.write(1, f"=== STEP {time.perf_counter() - t:.6f}\\n".encode())
if len(sys.argv) > 2:  # PyTorch's view of the same convolution calls
    from torch.profiler import profile
    with profile() as p:
        for _ in range(int(sys.argv[1])): training_step(model, opt, x, y, loss_fn)
    for e in p.key_averages():
        if e.key in ("aten::mkldnn_convolution", "aten::convolution_backward"):
            os.write(1, f"=== PROF {e.key} {e.cpu_time_total} {e.count}\\n".encode())
"""


def run(verbose: bool, profile: bool = False) -> str:
    env = dict(os.environ, ONEDNN_VERBOSE="2" if verbose else "0")
    args = [sys.executable, "-c", CHILD, str(STEPS)] + (["profile"] if profile else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout


def main() -> None:
    log = run(True).split("=== STEADY", 1)[1].splitlines()
    execs, creates, n = defaultdict(float), Counter(), Counter()
    for line in log:
        f = line.split(",")
        if line.startswith("onednn_verbose") and f[2] == "primitive":
            if f[3] == "exec":
                execs[f[5]] += float(f[-1]); n[f[5]] += 1
            else:
                creates[f[3]] += 1
    plain_log = run(False, profile=True).splitlines()
    plain = [float(l.split()[2]) * 1e3 for l in plain_log if l.startswith("=== STEP")]
    for l in plain_log:
        if l.startswith("=== PROF"):
            _, _, key, us, count = l.split()
            print(f"torch.profiler, {key} (children included): {float(us) / 1e3 / STEPS:.1f} ms per step "
                  f"in {int(count) // STEPS} calls")
    print(f"{STEPS} steps; per step: oneDNN execution " + ", ".join(
        f"{k} {execs[k] / STEPS:.1f} ms ({n[k] // STEPS} calls)" for k in sorted(execs)))
    print(f"primitive creations in steady state: {dict(creates)}")
    print(f"step without logging: median {statistics.median(plain):.1f} ms")


if __name__ == "__main__":
    main()
