import time, torch, statistics
from egeunet.host_memory import keep_freed_memory
from egeunet.train import build_model_and_optimizer
torch.set_num_threads(2)
keep_freed_memory()
torch.manual_seed(0)
model, opt, loss_fn = build_model_and_optimizer()
x = torch.randn(8,3,256,256).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8,1,256,256)>0.5).float()
R={k:[] for k in "fwd loss bwd opt".split()}
for it in range(16):
    t0=time.perf_counter(); out=model(x); t1=time.perf_counter(); loss=loss_fn(out,y); t2=time.perf_counter()
    opt.zero_grad(set_to_none=True); loss.backward(); t3=time.perf_counter(); opt.step(); t4=time.perf_counter()
    if it>=4:
        for k,v in zip(R,(t1-t0,t2-t1,t3-t2,t4-t3)): R[k].append(v*1e3)
print({k:round(statistics.median(v),2) for k,v in R.items()}, "total", round(sum(statistics.median(v) for v in R.values()),1))
