"""Experiment (issue #7): why the LayerNorms became direct kernels, in numbers.

1. One LayerNorm, forward + backward, `torch.compile(layer_norm_2d)` (what egeunet-train ran
   before) against its three direct kernels timed apart (forward, input gradient, weight/bias
   gradients as two-stage sums), channels_last, median of 40.
2. A tiny norm (8 x 48 x 4 x 4), where only the per-call cost is left: forward + backward with
   the direct kernels and with torch.compile, and the three kernel calls alone.
3. What a direct kernel costs to reach on a warm inductor cache (the second compile of a graph).
4. `torch.profiler` over three training steps with torch.compile's norms: dynamo's cache lookup
   per call, and the compiled functions' wrappers (self time) per step.

    python docs/experiments/2026-11-26/ln_kernel_parts.py
"""
import functools, time
import torch
from torch.profiler import ProfilerActivity, profile
from _common import median_ms, training_setup
from egeunet.model.egeunet import LayerNorm2d, layer_norm_2d
from egeunet.model.fast_norms import (DirectKernel, KernelGroup, _inductor_compile, _ln_forward, _ln_input_grad,
                                      _ln_param_grads, compiled_layer_norm)

model, opt, loss_fn, x, y = training_setup()  # 2 threads, egeunet-train's allocator
group = KernelGroup("experiment")
compiled = torch.compile(layer_norm_2d, dynamic=False)
fwd, dx, dwdb = (DirectKernel(f, group) for f in (functools.partial(_ln_forward, eps=1e-6), _ln_input_grad, _ln_param_grads))

# 1.
for shape in [(8, 20, 128, 128), (8, 5, 128, 128)]:
    cl = torch.channels_last
    a = torch.randn(shape).contiguous(memory_format=cl)
    ar = a.clone().requires_grad_()
    w, b = torch.randn(shape[1], requires_grad=True), torch.randn(shape[1], requires_grad=True)
    g = torch.randn(shape).contiguous(memory_format=cl)
    with torch.no_grad():
        _, m, r = fwd(a, w, b)
        parts = (median_ms(lambda: fwd(a, w, b)), median_ms(lambda: dx(g, a, w, m, r)), median_ms(lambda: dwdb(g, a, m, r)))
    print(f"LayerNorm {shape}: torch.compile forward + backward {median_ms(lambda: compiled(ar, w, b, 1e-6).backward(g)):.2f} ms; "
          f"direct kernels apart: forward {parts[0]:.2f}, input gradient {parts[1]:.2f}, weight/bias gradients {parts[2]:.2f} ms", flush=True)

# 2.
shape = (8, 48, 4, 4)
a = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_()
w, b = torch.ones(48, requires_grad=True), torch.zeros(48, requires_grad=True)
g = torch.randn(shape).contiguous(memory_format=torch.channels_last)
direct, comp = compiled_layer_norm(True), compiled_layer_norm(False)
t_direct = median_ms(lambda: direct(a, w, b, 1e-6).backward(g), 300, 30) * 1e3
t_comp = median_ms(lambda: comp(a, w, b, 1e-6).backward(g), 300, 30) * 1e3
k = direct.kernels[1e-6]
with torch.no_grad():
    _, m, r = k.forward(a, w, b)
    t_kernels = sum(median_ms(f, 300, 30) for f in (lambda: k.forward(a, w, b), lambda: k.input_grad(g, a, w, m, r),
                                                   lambda: k.param_grads(g, a, m, r))) * 1e3
print(f"tiny norm {shape}, forward + backward: direct {t_direct:.0f} us (of which the three kernel calls {t_kernels:.0f} us), "
      f"torch.compile {t_comp:.0f} us", flush=True)

# 3.
shape = (8, 24, 32, 32)
a = torch.randn(shape).contiguous(memory_format=torch.channels_last)
w, b = torch.randn(24), torch.randn(24)
f = functools.partial(_ln_forward, eps=1e-6)
times = []
for _ in range(3):
    t = time.perf_counter(); _inductor_compile(f, (a, w, b)); times.append(time.perf_counter() - t)
print("compiling one direct kernel, three times in a row (the first may compile, the others find it cached): "
      + ", ".join(f"{s:.2f} s" for s in times), flush=True)

# 4.
norms = [mm for mm in model.modules() if isinstance(mm, LayerNorm2d)]
for mm in norms:
    mm.kernel = comp
for _ in range(4):
    loss_fn(model(x), y).backward()
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(3):
        loss_fn(model(x), y).backward()
ev = {e.key: e for e in prof.key_averages()}
look = ev["TorchDynamo Cache Lookup"]
wrappers = sum(ev[n].self_cpu_time_total for n in ("CompiledFunction", "CompiledFunctionBackward", "TorchDynamo Cache Lookup") if n in ev)
print(f"torch.compile's norms (and loss) in a step: dynamo cache lookup {look.self_cpu_time_total / look.count:.0f} us per call, "
      f"{look.count / 3:.0f} calls per step; lookups + AOTAutograd wrappers {wrappers / 3e3:.1f} ms per step (self time)")
