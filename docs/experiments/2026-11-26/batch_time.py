import time, torch, statistics
torch.set_num_threads(2)
from egeunet.host_memory import keep_freed_memory
keep_freed_memory()
from egeunet.data import SegmentationFolder, resolve_data_root
from egeunet.train import training_batch, random_affines
from egeunet.preprocess import Preprocessing
sp = SegmentationFolder(resolve_data_root(None)).load_split("train", 256, 200, progress=False)
images, masks = torch.from_numpy(sp.images), torch.from_numpy(sp.masks)
pre = Preprocessing(size=256, mean=(180.,150.,130.), std=(40.,40.,40.))
g = torch.Generator().manual_seed(0)
ts=[]
for i in range(60):
    idx = torch.randperm(200, generator=g)[:8]; th = random_affines(8, g)
    t=time.perf_counter(); training_batch(images, masks, idx, pre, g, th); ts.append(time.perf_counter()-t)
print("training_batch ms", statistics.median(ts[10:])*1e3)
