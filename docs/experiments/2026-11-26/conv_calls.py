import time, sys, torch
from egeunet.host_memory import keep_freed_memory
from egeunet.train import build_model_and_optimizer, training_step
torch.set_num_threads(2)
keep_freed_memory()
torch.manual_seed(0)
model, opt, loss_fn = build_model_and_optimizer()
model.train()
x = torch.randn(8,3,256,256).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8,1,256,256)>0.5).float()
for _ in range(4): training_step(model, opt, x, y, loss_fn)
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
    for _ in range(3): training_step(model, opt, x, y, loss_fn)
ka = p.key_averages(group_by_input_shape=True)
rows = [k for k in ka if k.key in ("aten::convolution_backward","aten::mkldnn_convolution")]
rows.sort(key=lambda k: -k.self_cpu_time_total)
for k in rows[:200]:
    print(f"{k.key[6:30]:24s} {k.self_cpu_time_total/3/1000:7.2f} ms/step  n={k.count//3:3d}  {str(k.input_shapes)[:150]}")
