# Per-call cost of the compiled LayerNorm (forward + backward) on a tiny map, where the
# arithmetic is negligible: how much of a step could calling inductor's kernels without the
# dynamo/AOTAutograd wrappers save?  Usage: ln_overhead.py
import time, torch, statistics
from egeunet.model.egeunet import layer_norm_2d
from egeunet.model.fast_norms import compiled_layer_norm
torch.set_num_threads(2)
k = compiled_layer_norm()
x = torch.randn(8, 8, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
w = torch.randn(8, requires_grad=True); b = torch.randn(8, requires_grad=True)
def fb(fn):
    y = fn(x, w, b, 1e-6); y.sum().backward()
for fn, name in ((k, "compiled"), (layer_norm_2d, "eager")):
    for _ in range(20): fb(fn)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(200): fb(fn)
        ts.append((time.perf_counter() - t) / 200)
    print(name, f"{statistics.median(ts)*1e6:.0f} us per fwd+bwd (+ sum/backward overhead)")
def fb0():
    y = (x * 2); y.sum().backward()
ts=[]
for _ in range(5):
    t = time.perf_counter()
    for _ in range(200): fb0()
    ts.append((time.perf_counter() - t) / 200)
print("trivial", f"{statistics.median(ts)*1e6:.0f} us")
