"""Whole-model torch.compile of the training step, with every bilinear resize as two matrix
products (so inductor's backward is GEMMs, not index_put scatters). argv: variant, seconds."""
import sys, time, statistics, types, torch
import torch.nn.functional as F
from egeunet.host_memory import keep_freed_memory
import egeunet.model.egeunet
E = sys.modules["egeunet.model.egeunet"]
from egeunet.train import build_model_and_optimizer, deep_supervision_loss, training_step
variant, secs = sys.argv[1], float(sys.argv[2])
torch.set_num_threads(2)
keep_freed_memory()
torch.manual_seed(0)

def resize(x, size):
    return E._bilinear_matrix(int(size[0]), x.shape[2]) @ x @ E._bilinear_matrix(int(size[1]), x.shape[3]).T

if variant in ("matrix", "matrix+levers"):
    def interpolate(x, size=None, scale_factor=None, mode=None, align_corners=None):
        assert mode == "bilinear" and align_corners
        if size is None:
            size = [int(n * scale_factor) for n in x.shape[2:]]
        return resize(x, size)
    E.F = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
    E.F.interpolate = interpolate
    E._up2 = lambda x: resize(x, [2 * n for n in x.shape[2:]])

x = torch.randn(8, 3, 256, 256).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8, 1, 256, 256) > 0.5).float()
if variant == "train":
    model, opt, loss_fn = build_model_and_optimizer()
    step = lambda: training_step(model, opt, x, y, loss_fn)
else:
    if variant == "matrix+levers":
        model, opt, _ = build_model_and_optimizer(compiled_kernels=False)
    else:
        model = E.EGEUNet(E.EGEUNetConfig()).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2, fused=True)
    f = torch.compile(lambda x, y: deep_supervision_loss(model(x), y), dynamic=False)
    def step():
        loss = f(x, y); opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); return loss.item()
t = time.perf_counter(); l0 = step(); first = time.perf_counter() - t
for _ in range(3): step()
ts = []; t0 = time.perf_counter()
while time.perf_counter() - t0 < secs:
    t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
m = statistics.median(ts)
print(f"{variant}: {m*1e3:.1f} ms/step {8/m:.1f} img/s (n={len(ts)}, first {first:.1f}s, loss0 {l0:.6f})", flush=True)
if len(sys.argv) > 3:
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(3): step()
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=90))
