# Does building the next batch in a background thread (overlapping training_batch with the
# step, as a DataLoader prefetch would) speed up a CPU training step?  Usage: prefetch.py ROUNDS
# Three variants take turns, 10 steps each per round: batch built in the loop ("sync"), by a
# producer thread with 1 intra-op thread ("thread1") or with 2 ("thread2").
import time, sys, torch, statistics, threading, queue
from egeunet.host_memory import keep_freed_memory
from egeunet.train import build_model_and_optimizer, _eager_step, training_batch, random_affines
from egeunet.preprocess import Preprocessing
from egeunet.data import SegmentationFolder, resolve_data_root
torch.set_num_threads(2)
keep_freed_memory()
torch.manual_seed(0)
split = SegmentationFolder(resolve_data_root(None)).load_split("train", 256, limit=256)
images, masks = torch.from_numpy(split.images), torch.from_numpy(split.masks)
pre = Preprocessing(size=256, mean=(180.,150.,140.), std=(30.,35.,40.))
model, opt, loss_fn = build_model_and_optimizer()
gen = torch.Generator().manual_seed(0)
def jobs(n):
    order = torch.randperm(len(images), generator=gen)
    return [(order[(i*8)%248:(i*8)%248+8], random_affines(8, gen)) for i in range(n)]
def sync(n):
    for idx, th in jobs(n):
        x, y = training_batch(images, masks, idx, pre, gen, th)
        _eager_step(model, opt, x, y, loss_fn)
def pre_thread(n, threads_in_producer):
    q = queue.Queue(maxsize=2)
    js = jobs(n)
    def produce():
        torch.set_num_threads(threads_in_producer)
        for idx, th in js:
            q.put(training_batch(images, masks, idx, pre, gen, th))
    t = threading.Thread(target=produce, daemon=True); t.start()
    for _ in range(n):
        x, y = q.get()
        _eager_step(model, opt, x, y, loss_fn)
    t.join()
sync(4); pre_thread(4, 1)
res = {"sync": [], "thread1": [], "thread2": []}
for r in range(int(sys.argv[1])):
    for name, f in (("sync", lambda: sync(10)), ("thread1", lambda: pre_thread(10, 1)), ("thread2", lambda: pre_thread(10, 2))):
        t = time.perf_counter(); f(); res[name].append(80 / (time.perf_counter() - t))
for k, v in res.items():
    print(k, f"{statistics.median(v):.1f} img/s", [f"{x:.1f}" for x in v])
print("ratios thread1/sync per round", [f"{a/b:.3f}" for a, b in zip(res["thread1"], res["sync"])])
