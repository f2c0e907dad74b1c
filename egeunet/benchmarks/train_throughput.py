"""Training-step throughput: images/s of one step (batch 8, 256x256, forward + backward +
AdamW) for the plain eager model and for the set-up ``egeunet-train`` uses, measured in
the same process, interleaved, so the ratio is fair on a machine whose load varies.

    python -m egeunet.benchmarks.train_throughput --threads 2 --steps 20
    python -m egeunet.benchmarks.train_throughput --levers [--compile]   # + levers tried

All variants compute the same mathematics (checked: same first-step loss on the same
batch). Data loading is not included: ``egeunet-train`` decodes the data once and keeps it
in memory, so a step's cost is the model. ``--levers`` adds LayerNorm formulations that
were tried and not adopted, ``--compile`` ``torch.compile`` (minutes of compilation).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import types

import torch
import torch.nn.functional as F

from egeunet.model import egeunet
from egeunet.model.egeunet import LayerNorm2d
from egeunet.train import deep_supervision_loss


def _ln_conv_means(self, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm2d with its channel means as 1x1 convolutions."""
    k = x.new_full((1, x.shape[1], 1, 1), 1.0 / x.shape[1])
    centred = x - F.conv2d(x, k)
    y = centred * torch.rsqrt(F.conv2d(centred * centred, k) + self.eps)
    return y * self.weight[:, None, None] + self.bias[:, None, None]


def _ln_sum_addcmul(self, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm2d with sum / C for the means and the affine as one addcmul."""
    c = x.shape[1]
    centred = x - x.sum(1, keepdim=True) / c
    y = centred * torch.rsqrt((centred * centred).sum(1, keepdim=True) / c + self.eps)
    return torch.addcmul(self.bias[:, None, None], y, self.weight[:, None, None])


# name -> (memory format, LayerNorm2d forward or None for the model's own, torch.compile?)
VARIANTS = {
    "eager (NCHW)": (torch.contiguous_format, None, False),
    "egeunet-train (channels_last)": (torch.channels_last, None, False),
}
LEVERS = {
    "channels_last, LayerNorm means as 1x1 convs": (torch.channels_last, _ln_conv_means, False),
    "channels_last, LayerNorm sum/C + addcmul": (torch.channels_last, _ln_sum_addcmul, False),
    "NCHW, LayerNorm means as 1x1 convs": (torch.contiguous_format, _ln_conv_means, False),
}
COMPILED = {"channels_last, torch.compile(model)": (torch.channels_last, None, True)}


def _setup(variant: tuple, batch: int, size: int):
    memory_format, ln_forward, compiled = variant
    torch.manual_seed(0)
    model = egeunet().train().to(memory_format=memory_format)
    if ln_forward is not None:
        for m in model.modules():
            if isinstance(m, LayerNorm2d):
                m.forward = types.MethodType(ln_forward, m)
    net = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=memory_format)
    y = (torch.rand(batch, 1, size, size) > 0.7).float()

    def step() -> float:
        loss = deep_supervision_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def run(threads: int = 2, steps: int = 20, warmup: int = 3, batch: int = 8, size: int = 256, rounds: int = 3,
        levers: bool = False, compiled: bool = False) -> dict:
    torch.set_num_threads(threads)
    variants = {**VARIANTS, **(LEVERS if levers else {}), **(COMPILED if compiled else {})}
    steps_by_name = {name: _setup(v, batch, size) for name, v in variants.items()}
    first_losses, first_step_s = {}, {}
    for name, step in steps_by_name.items():  # the first step includes any compilation
        t0 = time.perf_counter()
        first_losses[name] = step()
        first_step_s[name] = time.perf_counter() - t0
    for step in steps_by_name.values():
        for _ in range(warmup):
            step()
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # interleave so all variants see the same machine state
        for name, step in steps_by_name.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            rates[name].append(batch * steps / (time.perf_counter() - t0))
    names = list(variants)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": threads,
                    "torch": torch.__version__},
        "batch": batch, "size": size, "steps_per_round": steps, "rounds": rounds,
        "img_per_s": {n: statistics.median(r) for n, r in rates.items()},
        "first_step_loss": first_losses, "first_step_seconds": first_step_s,
    }
    result["speedup"] = result["img_per_s"][names[1]] / result["img_per_s"][names[0]]
    result["vs_eager"] = {n: v / result["img_per_s"][names[0]] for n, v in result["img_per_s"].items()}
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--levers", action="store_true", help="also the LayerNorm formulations tried and not adopted")
    p.add_argument("--compile", action="store_true", help="also torch.compile (minutes of compilation)")
    p.add_argument("--json", help="write the result here")
    a = p.parse_args(argv)
    res = run(a.threads, a.steps, rounds=a.rounds, levers=a.levers, compiled=a.compile)
    for name, v in res["img_per_s"].items():
        print(f"{name:48s} {v:7.1f} img/s  {res['vs_eager'][name]:.2f}x  first step {res['first_step_seconds'][name]:.1f} s")
    print(f"speed-up {res['speedup']:.2f}x ({res['machine']['threads']} threads, batch {res['batch']})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
