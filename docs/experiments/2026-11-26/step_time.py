import time, sys, torch, statistics
from egeunet.host_memory import keep_freed_memory
from egeunet.train import build_model_and_optimizer, training_step
th, b = int(sys.argv[1]), int(sys.argv[2]); S = int(sys.argv[4]) if len(sys.argv)>4 else 256
torch.set_num_threads(th)
keep_freed_memory()
torch.manual_seed(0)
model, opt, loss_fn = build_model_and_optimizer()
x = torch.randn(b,3,S,S).contiguous(memory_format=torch.channels_last)
y = (torch.rand(b,1,S,S)>0.5).float()
for _ in range(4): training_step(model, opt, x, y, loss_fn)
ts=[]
t0=time.perf_counter()
while time.perf_counter()-t0 < float(sys.argv[3]):
    t=time.perf_counter(); training_step(model, opt, x, y, loss_fn); ts.append(time.perf_counter()-t)
m=statistics.median(ts); print(f"threads {th} batch {b}: {m*1e3:.1f} ms/step {b/m:.1f} img/s n={len(ts)}")
