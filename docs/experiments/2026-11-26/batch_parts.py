import time, torch, statistics, torch.nn.functional as F
torch.set_num_threads(2)
from egeunet.host_memory import keep_freed_memory
keep_freed_memory()
from egeunet.train import random_affines
g = torch.Generator().manual_seed(0)
imgs = torch.randint(0,255,(8,256,256,3),dtype=torch.uint8); m = torch.randint(0,2,(8,256,256),dtype=torch.uint8)
mean = torch.tensor([180.,150.,130.]); inv = 1/torch.tensor([40.,40.,40.])
th = random_affines(8, g)
def bench(f, n=40):
    for _ in range(5): f()
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return statistics.median(ts)*1e3
def parts():
    T={}
    t=time.perf_counter(); x=((imgs.float()-mean)*inv).permute(0,3,1,2).contiguous(); T['norm']=time.perf_counter()-t
    t=time.perf_counter(); y=m.float()[:,None]; T['mask']=time.perf_counter()-t
    t=time.perf_counter(); grid=F.affine_grid(th, list(x.shape), align_corners=False); T['grid']=time.perf_counter()-t
    t=time.perf_counter(); x=F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False); T['gsx']=time.perf_counter()-t
    t=time.perf_counter(); y=F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=False); T['gsy']=time.perf_counter()-t
    t=time.perf_counter(); x=x.contiguous(memory_format=torch.channels_last); T['cl']=time.perf_counter()-t
    return T
R=[parts() for _ in range(40)][5:]
print({k: round(statistics.median(r[k] for r in R)*1e3,2) for k in R[0]})
