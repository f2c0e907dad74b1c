"""Training throughput on a CUDA GPU: images/s of whole training steps (batch 8, 256x256:
forward, deep-supervision loss, backward, AdamW) for plain eager PyTorch and for what
``egeunet-train --device cuda`` runs (the step captured once as a CUDA graph and replayed),
measured side by side in one process, the variants taking turns round by round.

    python -m egeunet.benchmarks.gpu_step                 # needs a CUDA GPU
    python -m egeunet.benchmarks.gpu_step --json gpu_step.json

Variants (the same mathematics; each one's loss on one fixed batch, before any update, is
reported and must agree):

- ``eager``: the model as written, foreach AdamW, one kernel launch per op from Python;
- ``eager + trainer kernels``: the trainer's compiled LayerNorm and loss kernels and its fused,
  capturable AdamW, still launched op by op;
- ``CUDA graph (= egeunet-train)``: that step captured and replayed (``egeunet.graphed_step``).

The batch lives on the GPU already (the trainer draws an epoch's augmentations on the GPU),
so this measures the step, not data loading. At batch 8 this network is launch-bound: the
ratio says how much of an eager step is CPU time spent launching ~1,500 small kernels.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from egeunet.cli import _int_at_least
from egeunet.graphed_step import GraphedTrainingStep
from egeunet.model import egeunet
from egeunet.model.checkpoint import atomic_write_json
from egeunet.train import _eager_step, _setup_device, build_model_and_optimizer, deep_supervision_loss

VARIANTS = ["eager", "eager + trainer kernels", "CUDA graph (= egeunet-train)"]


def _variant(name: str, x: torch.Tensor, y: torch.Tensor):
    """(a callable running one training step, its model)."""
    torch.manual_seed(0)  # every variant starts from the same weights
    if name == "eager":
        model = egeunet().train().cuda()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
        return (lambda: _eager_step(model, opt, x, y, deep_supervision_loss)), model
    model, opt, loss_fn = build_model_and_optimizer(device="cuda")
    model.train()
    if name == "eager + trainer kernels":
        return (lambda: _eager_step(model, opt, x, y, loss_fn)), model
    graphed = GraphedTrainingStep(model, opt, loss_fn, tuple(x.shape), tuple(y.shape))
    return (lambda: graphed(x, y)), model


def run(steps: int = 50, rounds: int = 5, batch: int = 8, size: int = 256, device: str = "cuda") -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_step: no CUDA GPU visible to torch; on a CPU, run "
                         "python -m egeunet.benchmarks.train_throughput instead")
    _setup_device(device)  # the trainer's settings (TF32 off, the current device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).cuda()
    y = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float().cuda()
    steps_of, first_loss, setup_s = {}, {}, {}
    for name in VARIANTS:
        t0 = time.perf_counter()
        step, model = _variant(name, x, y)
        with torch.no_grad():
            first_loss[name] = deep_supervision_loss(model(x), y).item()  # same mathematics
        for _ in range(3):  # warm-up: compiling, cuDNN's choices, the allocator's pool
            step()
        torch.cuda.synchronize()
        setup_s[name] = time.perf_counter() - t0
        steps_of[name] = step
    rates: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for _ in range(rounds):  # take turns so every variant sees the same GPU clocks and host load
        for name in VARIANTS:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                steps_of[name]()
            torch.cuda.synchronize()
            rates[name].append(batch * steps / (time.perf_counter() - t0))
    img_per_s = {n: statistics.median(r) for n, r in rates.items()}
    return {
        "machine": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__},
        "batch": batch, "size": size, "steps_per_round": steps, "rounds": rounds,
        "img_per_s": img_per_s, "rounds_img_per_s": rates,
        "vs_eager": {n: v / img_per_s["eager"] for n, v in img_per_s.items()},
        "first_step_loss": first_loss, "setup_seconds": setup_s,
    }


def markdown(res: dict) -> str:
    lines = ["| variant | img/s | vs eager | set-up + 3 warm-up steps (s) | loss on a fixed batch |",
             "|---|---:|---:|---:|---:|"]
    for n, v in res["img_per_s"].items():
        lines.append(f"| {n} | {v:,.0f} | {res['vs_eager'][n]:.2f}x | {res['setup_seconds'][n]:.1f} "
                     f"| {res['first_step_loss'][n]:.6f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=_int_at_least(1), default=50, help="steps per variant per round")
    p.add_argument("--rounds", type=_int_at_least(1), default=5)
    p.add_argument("--batch", type=_int_at_least(1), default=8)
    p.add_argument("--size", type=_int_at_least(1), default=256)
    p.add_argument("--device", default="cuda", help="cuda or cuda:N")
    p.add_argument("--json", help="write the result here")
    a = p.parse_args(argv)
    if a.size % 32:
        p.error(f"--size must be a multiple of 32 (the network halves it five times), not {a.size}")
    res = run(a.steps, a.rounds, a.batch, a.size, a.device)
    print(markdown(res))
    print(f"CUDA graph vs eager: {res['vs_eager'][VARIANTS[-1]]:.2f}x ({res['machine']['gpu']}, "
          f"batch {a.batch}, {a.size}x{a.size})")
    if a.json:
        atomic_write_json(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
