import time, torch, statistics, torch.nn.functional as F, sys
from torch import nn
torch.set_num_threads(2)
from egeunet.host_memory import keep_freed_memory
keep_freed_memory()
from egeunet.train import build_model_and_optimizer
from egeunet.model.egeunet import GHPA, GAB, layer_norm_2d, interpolate_bilinear
import torch._dynamo
torch._dynamo.config.cache_size_limit = 256

def conv_w(conv, x):
    """conv written out: 1x1 as matmul over channels, depthwise kxk as shifted sums"""
    if conv.kernel_size == (1, 1) and conv.groups == 1 and x.dim() == 4:
        y = torch.einsum("bchw,oc->bohw", x, conv.weight[:, :, 0, 0])
        return y + conv.bias.view(1, -1, 1, 1)
    if x.dim() == 4 and conv.groups == conv.in_channels == conv.out_channels:
        k = conv.kernel_size[0]; d = conv.dilation[0]; p = conv.padding[0]
        h, w = x.shape[2], x.shape[3]
        xp = F.pad(x, (p, p, p, p))
        wt = conv.weight
        y = conv.bias.view(1, -1, 1, 1)
        for i in range(k):
            for j in range(k):
                y = y + xp[:, :, i*d:i*d+h, j*d:j*d+w] * wt[:, 0, i, j].view(1, -1, 1, 1)
        return y
    return conv(x)

def seq_w(seq, x):
    for m in seq:
        x = F.gelu(x) if isinstance(m, nn.GELU) else conv_w(m, x)
    return x

def ghpa_w(self, x):
    x = layer_norm_2d(x, self.norm1.weight, self.norm1.bias, self.norm1.eps)
    x1, x2, x3, x4 = torch.chunk(x, 4, dim=1)
    c, h, w = x1.shape[1], x1.shape[2], x1.shape[3]
    xy, zx, zy = self.attention_maps(c, h, w)
    x = torch.cat([x1 * xy, x2 * zx, x3 * zy, seq_w(self.dw, x4)], dim=1)
    x = layer_norm_2d(x, self.norm2.weight, self.norm2.bias, self.norm2.eps)
    return seq_w(self.ldw, x)

def bench(f, n=30):
    for _ in range(5): f()
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return statistics.median(ts)*1e3

model, opt, loss_fn = build_model_and_optimizer()
blocks = [("enc3", model.encoder[3], 24, 32), ("enc4", model.encoder[4], 32, 16), ("enc5", model.encoder[5], 48, 8),
          ("dec0", model.decoder[0], 64, 8), ("dec1", model.decoder[1], 48, 16), ("dec2", model.decoder[2], 32, 32)]
tot_a = tot_b = 0
for name, blk, c, s in blocks:
    x = torch.randn(8, c, s, s).contiguous(memory_format=torch.channels_last).requires_grad_()
    comp = torch.compile(lambda x, blk=blk: ghpa_w(blk, x), dynamic=False)
    ya = blk(x); yb = comp(x)
    g = torch.randn_like(ya)
    ga = torch.autograd.grad(ya, [x, *blk.parameters()], g); gb = torch.autograd.grad(yb, [x, *blk.parameters()], g)
    err = max((a-b).abs().max().item()/(a.abs().max().item()+1e-12) for a,b in zip(ga,gb))
    def fa(): torch.autograd.backward(blk(x), g)
    def fb(): torch.autograd.backward(comp(x), g)
    a, b = bench(fa), bench(fb); tot_a += a; tot_b += b
    print(f"{name} {c}x{s}: module {a:.2f} ms  compiled-written-out {b:.2f} ms  rel grad err {err:.1e}")
print(f"total module {tot_a:.2f} ms  compiled {tot_b:.2f} ms")
