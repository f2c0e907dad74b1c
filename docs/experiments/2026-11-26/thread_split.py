"""Experiment: run layers on small maps (<= LIMIT pixels) with 1 thread, larger with 2 (forward
and backward), vs always 2 threads. Same mathematics. Alternating A/B on a fixed batch."""
import sys, time, statistics, torch
from egeunet.host_memory import keep_freed_memory
from egeunet.train import build_model_and_optimizer, training_step
LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 32 * 32
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(2)
keep_freed_memory()
torch.manual_seed(0)
model, opt, loss_fn = build_model_and_optimizer()
x = torch.randn(8, 3, 256, 256).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8, 1, 256, 256) > 0.5).float()
state = {"on": False}

def threads_for(t):
    return 1 if t.dim() == 4 and t.shape[-1] * t.shape[-2] <= LIMIT else 2

def pre(mod, args):
    if state["on"]:
        for a in args:
            if torch.is_tensor(a):
                torch.set_num_threads(threads_for(a)); break

def post(mod, args, out):
    if state["on"] and torch.is_tensor(out) and out.requires_grad:
        n = threads_for(out)
        out.register_hook(lambda g: torch.set_num_threads(n))

hooked = 0
for name, m in model.named_modules():
    if name and len(list(m.children())) == 0 or name.count(".") <= 1 and name:
        m.register_forward_pre_hook(pre); m.register_forward_hook(post); hooked += 1
print("hooked", hooked, "modules; limit", LIMIT)

def run(on, n=10):
    state["on"] = on
    ts = []
    for _ in range(n):
        torch.set_num_threads(2)
        t = time.perf_counter(); training_step(model, opt, x, y, loss_fn); ts.append(time.perf_counter() - t)
    torch.set_num_threads(2)
    return statistics.median(ts)

for on in (False, True, False, True):
    run(on, 3)
for r in range(ROUNDS):
    a = run(False); b = run(True)
    print(f"round {r}: 2 threads {a*1e3:.1f} ms, split {b*1e3:.1f} ms, ratio {a/b:.3f}", flush=True)
