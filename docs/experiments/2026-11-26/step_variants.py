"""ms per training step (egeunet-train's, every lever on, 2 threads, fixed batch 8x256x256) under
process-wide settings that can only be chosen at start-up, each variant in its own process,
alternating. argv: rounds, steps per round.

    base       as egeunet-train runs
    cppwrap    inductor's C++ wrapper for the compiled LayerNorm/loss kernels (cpp_wrapper=True)
    bind       OMP_PROC_BIND=close OMP_PLACES=cores (threads pinned to cores)
    spin       GOMP_SPINCOUNT=10000000 (idle OpenMP threads spin longer before sleeping)
"""
import os, statistics, subprocess, sys, time

VARIANTS = {"base": {}, "cppwrap": {}, "bind": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"},
            "spin": {"GOMP_SPINCOUNT": "10000000"}}

def child(variant: str, steps: int) -> None:
    if variant == "cppwrap":
        import torch._inductor.config as ic
        ic.cpp_wrapper = True
    from egeunet.train import training_step
    from _common import training_setup
    model, opt, loss_fn, x, y = training_setup()
    for _ in range(4):
        loss = training_step(model, opt, x, y, loss_fn)
    ts = []
    for _ in range(steps):
        t = time.perf_counter(); training_step(model, opt, x, y, loss_fn); ts.append(time.perf_counter() - t)
    print(f"{statistics.median(ts) * 1e3:.1f} {loss:.6f}")

if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3])); sys.exit()
    rounds, steps = int(sys.argv[1]), int(sys.argv[2])
    res = {v: [] for v in VARIANTS}
    for r in range(rounds):
        for v, env in VARIANTS.items():
            out = subprocess.run([sys.executable, __file__, "--child", v, str(steps)], env={**os.environ, **env},
                                 capture_output=True, text=True, check=True).stdout.split()
            res[v].append(float(out[-2]))
            print(f"round {r + 1} {v}: {out[-2]} ms/step (loss before the first update {out[-1]})", flush=True)
    base = res["base"]
    for v, ms in res.items():
        print(f"{v:8s} median {statistics.median(ms):6.1f} ms; per round vs base "
              + ", ".join(f"{b / m:.2f}x" for b, m in zip(base, ms)))
