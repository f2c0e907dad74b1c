"""Issue #7 experiment (2026-11-26, later session): are convolutions on small maps cheaper without
oneDNN? ~180 oneDNN calls per training step cost >= 50 us each even on 8x8 maps. Times one
forward + backward of a single conv at the step's small shapes (batch 8, 2 threads), with
oneDNN (PyTorch's default on CPU) and with ``torch.backends.mkldnn.flags(enabled=False)``
(PyTorch's native kernels), NCHW and channels_last. Usage: python onednn_off.py"""
import torch, time, torch.nn.functional as F
torch.set_num_threads(2)
def bench(x, w, groups, pad, dil, n=200):
    x = x.detach().requires_grad_(); w = w.detach().requires_grad_()
    for _ in range(10):
        y = F.conv2d(x, w, None, 1, pad, dil, groups); y.sum().backward()
    t = time.perf_counter()
    for _ in range(n):
        y = F.conv2d(x, w, None, 1, pad, dil, groups); y.sum().backward()
    return (time.perf_counter() - t) / n * 1e6
for (c, hw, k, groups, dil) in [(16,8,3,16,1),(16,8,1,1,1),(24,16,3,24,1),(24,16,1,1,1),(32,32,3,32,1),(32,32,1,1,1),(8,64,3,8,2)]:
    for cl in (False, True):
        x = torch.randn(8, c, hw, hw); w = torch.randn(c if groups == 1 else c, c // groups, k, k)
        if cl: x = x.contiguous(memory_format=torch.channels_last)
        pad = dil * (k // 2)
        a = bench(x, w, groups, pad, dil)
        with torch.backends.mkldnn.flags(enabled=False):
            b = bench(x, w, groups, pad, dil)
        print(f"c{c} {hw}x{hw} k{k} g{groups} cl={cl}: mkldnn {a:.0f} us, native {b:.0f} us")
