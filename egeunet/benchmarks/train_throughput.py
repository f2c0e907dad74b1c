"""Training-step throughput: images/s of one step (batch 8, 256x256, forward + backward +
AdamW) for the plain eager model and for the set-up ``egeunet-train`` uses, measured in
the same process, interleaved, so the ratio is fair on a machine whose load varies.

    python -m egeunet.benchmarks.train_throughput --threads 2 --steps 20

Both variants compute the same mathematics (checked: same loss on the same batch). Data
loading is not included: ``egeunet-train`` decodes the data once and keeps it in memory,
so a step's cost is the model.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from egeunet.model import egeunet
from egeunet.train import deep_supervision_loss

VARIANTS = {
    "eager (NCHW)": torch.contiguous_format,
    "egeunet-train (channels_last)": torch.channels_last,
}


def _setup(memory_format, batch: int, size: int):
    torch.manual_seed(0)
    model = egeunet().train().to(memory_format=memory_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=memory_format)
    y = (torch.rand(batch, 1, size, size) > 0.7).float()

    def step() -> float:
        loss = deep_supervision_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def run(threads: int = 2, steps: int = 20, warmup: int = 3, batch: int = 8, size: int = 256, rounds: int = 3) -> dict:
    torch.set_num_threads(threads)
    steps_by_name = {name: _setup(fmt, batch, size) for name, fmt in VARIANTS.items()}
    first_losses = {name: step() for name, step in steps_by_name.items()}
    for step in steps_by_name.values():
        for _ in range(warmup):
            step()
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):  # interleave so both see the same machine state
        for name, step in steps_by_name.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            rates[name].append(batch * steps / (time.perf_counter() - t0))
    names = list(VARIANTS)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": threads,
                    "torch": torch.__version__},
        "batch": batch, "size": size, "steps_per_round": steps, "rounds": rounds,
        "img_per_s": {n: statistics.median(r) for n, r in rates.items()},
        "first_step_loss": first_losses,
    }
    result["speedup"] = result["img_per_s"][names[1]] / result["img_per_s"][names[0]]
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="write the result here")
    a = p.parse_args(argv)
    res = run(a.threads, a.steps, rounds=a.rounds)
    for name, v in res["img_per_s"].items():
        print(f"{name:32s} {v:7.1f} img/s")
    print(f"speed-up {res['speedup']:.2f}x ({res['machine']['threads']} threads, batch {res['batch']})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
