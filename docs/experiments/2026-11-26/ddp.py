import os, sys, time, statistics, tempfile, torch, torch.distributed as dist
import torch.multiprocessing as mp
def worker(rank, world, path, secs, q):
    torch.set_num_threads(1)
    from egeunet.host_memory import keep_freed_memory
    from egeunet.train import build_model_and_optimizer
    keep_freed_memory()
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model, opt, loss_fn = build_model_and_optimizer()
    ddp = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False, gradient_as_bucket_view=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8,3,256,256, generator=g).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(8,1,256,256, generator=g)>0.5).float()
    xs, ys = x[rank*4:(rank+1)*4], y[rank*4:(rank+1)*4]
    def step():
        loss = loss_fn(ddp(xs), ys); opt.zero_grad(set_to_none=False); loss.backward(); opt.step(); return loss.item()
    for _ in range(4): step()
    ts=[]; t0=time.perf_counter()
    while True:
        t=time.perf_counter(); step(); ts.append(time.perf_counter()-t)
        flag = torch.tensor([time.perf_counter()-t0 > secs], dtype=torch.int32); dist.all_reduce(flag)
        if flag.item(): break
    if rank == 0: q.put((statistics.median(ts), len(ts), sum(p.detach().abs().sum().item() for p in model.parameters())))
    dist.destroy_process_group()
if __name__ == "__main__":
    secs = float(sys.argv[1])
    ctx = mp.get_context("spawn"); q = ctx.SimpleQueue()
    path = tempfile.mktemp()
    mp.start_processes(worker, args=(2, path, secs, q), nprocs=2, start_method="spawn")
    m, n, s = q.get()
    print(f"DDP 2x1 thread batch 4+4: {m*1e3:.1f} ms/step {8/m:.1f} img/s n={n}")
