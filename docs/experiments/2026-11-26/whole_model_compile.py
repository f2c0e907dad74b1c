import time, sys, torch, statistics
from egeunet.host_memory import keep_freed_memory
from egeunet.model.egeunet import EGEUNet, EGEUNetConfig
from egeunet.train import deep_supervision_loss
torch.set_num_threads(2)
keep_freed_memory()
torch.manual_seed(0)
model = EGEUNet(EGEUNetConfig()).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2, fused=True)
def fwd_loss(x, y): return deep_supervision_loss(model(x), y)
f = torch.compile(fwd_loss, dynamic=False)
x = torch.randn(8,3,256,256).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8,1,256,256)>0.5).float()
def step():
    loss = f(x, y); opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); return loss
t=time.perf_counter(); step(); print("first", time.perf_counter()-t)
for _ in range(3): step()
ts=[]
for _ in range(12):
    t=time.perf_counter(); step(); ts.append(time.perf_counter()-t)
print("whole compile ms/step", statistics.median(ts)*1e3)
if len(sys.argv)>1:
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(3): step()
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
