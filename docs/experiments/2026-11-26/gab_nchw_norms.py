"""Experiment (issue #7): the bridges' group LayerNorms in NCHW on the large maps.

A compiled channel LayerNorm over 5 channels costs 2.4x as much on channels_last memory as on
NCHW (8x5x128x128: ~1.0 vs ~0.4 ms forward + backward), because channels_last puts the 5
channels innermost and leaves the kernel nothing to vectorise. Variant: in every bridge whose
maps have >= MIN_PIXELS pixels, each group is concatenated into NCHW memory, normalised there,
and handed to its dilated conv as channels_last again (two layout copies per group).

1. LayerNorm alone, forward + backward, at the step's shapes and both layouts (median of 30).
2. Whole `egeunet-train` steps on a fixed batch (2 threads, batch 8, every lever on), the two
   bridge forms alternating in one process, ROUNDS rounds of STEPS steps each.

    python docs/experiments/2026-11-26/gab_nchw_norms.py [ROUNDS] [STEPS] [MIN_PIXELS]
"""
import collections, statistics, sys, time, types
import torch
import torch.nn.functional as F
from egeunet.model.egeunet import GAB, LayerNorm2d, layer_norm_2d
from egeunet.train import training_step
from _common import training_setup

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 6
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
MIN_PIXELS = int(sys.argv[3]) if len(sys.argv) > 3 else 64 * 64
model, opt, loss_fn, x, y = training_setup()

shapes = collections.Counter()
hooks = [m.register_forward_hook(lambda mod, inp, out: shapes.update([tuple(inp[0].shape)]))
         for m in model.modules() if isinstance(m, LayerNorm2d)]
model(x)
for h in hooks:
    h.remove()
ln = torch.compile(layer_norm_2d, dynamic=False)


def ln_time(s, fmt):
    t = torch.randn(s).contiguous(memory_format=fmt).requires_grad_()
    w, b = torch.ones(s[1], requires_grad=True), torch.zeros(s[1], requires_grad=True)
    g = torch.randn(s).contiguous(memory_format=fmt)
    for _ in range(5):
        ln(t, w, b, 1e-6).backward(g)
    ts = []
    for _ in range(30):
        t0 = time.perf_counter(); ln(t, w, b, 1e-6).backward(g); ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


total = collections.Counter()
for s, k in sorted(shapes.items(), key=lambda kv: -kv[0][1] * kv[0][2] * kv[0][3]):
    cl, nc = ln_time(s, torch.channels_last), ln_time(s, torch.contiguous_format)
    total["channels_last"] += k * cl; total["nchw"] += k * nc
    print(f"LayerNorm {s} x {k} per step: channels_last {cl:.3f} ms, NCHW {nc:.3f} ms", flush=True)
print("all LayerNorms of a step, alone:", {f: f"{v:.2f} ms" for f, v in total.items()})


def nchw_groups_forward(self, x_high, x_low, mask=None):
    """GAB.forward with each group's LayerNorm on NCHW memory, on maps of >= MIN_PIXELS pixels."""
    if x_low.shape[2] * x_low.shape[3] < MIN_PIXELS:
        return GAB.forward(self, x_high, x_low, mask)
    x_high = F.interpolate(self.pre_project(x_high), size=x_low.shape[2:], mode="bilinear", align_corners=True)
    parts_high = torch.chunk(x_high, len(self.groups), dim=1)
    parts_low = torch.chunk(x_low, len(self.groups), dim=1)
    extra = [mask] if mask is not None else []
    fused = [self.dilated_conv(conv, norm(torch.cat([h, l, *extra], dim=1).contiguous())
                               .contiguous(memory_format=torch.channels_last))
             for (norm, conv), h, l in zip(self.groups, parts_high, parts_low)]
    return self.tail_conv(torch.cat(fused, dim=1))


bridges = [m for m in model.modules() if isinstance(m, GAB)]


def use(variant):
    for m in bridges:
        if variant == "nchw":
            m.forward = types.MethodType(nchw_groups_forward, m)
        else:
            m.__dict__.pop("forward", None)


def steps(variant, n):
    use(variant)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); loss = training_step(model, opt, x, y, loss_fn); ts.append(time.perf_counter() - t)
    return statistics.median(ts), loss


state = {k: v.clone() for k, v in model.state_dict().items()}
for v in ("channels_last", "nchw"):  # same loss from the same weights before any update
    model.load_state_dict(state)
    use(v)
    print(f"loss on the fixed batch, {v} bridges: {loss_fn(model(x), y).item():.6f}")
for v in ("channels_last", "nchw"):
    steps(v, 4)
ratios = []
for r in range(ROUNDS):
    (a, _), (b, _) = steps("channels_last", STEPS), steps("nchw", STEPS)
    ratios.append(a / b)
    print(f"round {r + 1}: channels_last {a * 1e3:.1f} ms, NCHW group norms {b * 1e3:.1f} ms per step: {a / b:.3f}x", flush=True)
print(f"median speed-up of the NCHW group norms (>= {MIN_PIXELS} pixels): {statistics.median(ratios):.3f}x")
