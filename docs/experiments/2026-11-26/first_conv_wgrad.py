import time, torch, statistics, torch.nn.functional as F
torch.set_num_threads(2)
from egeunet.host_memory import keep_freed_memory
keep_freed_memory()
def bench(f, n=30):
    for _ in range(5): f()
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return statistics.median(ts)*1e3
def wgrad(x, go):
    H, W = x.shape[2], x.shape[3]
    xp = F.pad(x, (1,1,1,1))
    taps = [(xp[:, c:c+1, i:i+H, j:j+W] * go).sum((0,2,3)) for c in range(x.shape[1]) for i in range(3) for j in range(3)]
    return torch.stack(taps, 1).view(go.shape[1], x.shape[1], 3, 3), go.sum((0,2,3))
def wgrad2(x, go):
    # nhwc: (N, C) x (N, O) per tap as matmul over a shifted view
    H, W = x.shape[2], x.shape[3]
    xp = F.pad(x, (1,1,1,1))
    return torch.stack([torch.einsum('bchw,bohw->oc', xp[:, :, i:i+H, j:j+W], go) for i in range(3) for j in range(3)], -1).view(go.shape[1], x.shape[1], 3, 3)
cw = torch.compile(wgrad, dynamic=False)
for (c,o,s) in [(3,8,256),(8,16,128),(16,24,64)]:
    x = torch.randn(8,c,s,s).contiguous(memory_format=torch.channels_last)
    go = torch.randn(8,o,s,s).contiguous(memory_format=torch.channels_last)
    w = torch.randn(o,c,3,3).contiguous(memory_format=torch.channels_last)
    ref = torch.ops.aten.convolution_backward(go, x, w, [o], [1,1],[1,1],[1,1],False,[0,0],1,[False,True,True])
    r = cw(x, go)
    print(c,o,s,"err", (r[0]-ref[1]).abs().max().item()/ref[1].abs().max().item())
    print("  onednn wgrad", bench(lambda: torch.ops.aten.convolution_backward(go, x, w, [o], [1,1],[1,1],[1,1],False,[0,0],1,[False,True,True])))
    print("  onednn wgrad+igrad", bench(lambda: torch.ops.aten.convolution_backward(go, x, w, [o], [1,1],[1,1],[1,1],False,[0,0],1,[True,True,True])))
    print("  igrad only", bench(lambda: torch.ops.aten.convolution_backward(go, x, w, [o], [1,1],[1,1],[1,1],False,[0,0],1,[True,False,False])))
    print("  compiled taps", bench(lambda: cw(x, go)))
    print("  einsum taps", bench(lambda: wgrad2(x, go)))
