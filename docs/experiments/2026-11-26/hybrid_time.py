"""Interleaved p50 latency (1 thread) and mask agreement of .tflite files taking float pixels.
Usage: hybrid_time.py ROUNDS FILE..."""
import statistics, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from egeunet.data import SegmentationFolder, resolve_data_root

imgs = SegmentationFolder(resolve_data_root(None)).load_split("test", 256, limit=32).images.astype(np.float32)
files = sys.argv[2:]
interps = []
for f in files:
    it = Interpreter(model_path=f, num_threads=1)
    it.allocate_tensors()
    interps.append(it)
def run(it, x):
    it.set_tensor(it.get_input_details()[0]["index"], x[None])
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[0, :, :, 0]
masks = [[run(it, x) > 0 for x in imgs] for it in interps]
for f, m in zip(files, masks):
    inter = sum((a & b).sum() for a, b in zip(m, masks[0])); union = sum((a | b).sum() for a, b in zip(m, masks[0]))
    print(f"{f}: IoU vs {files[0]} {inter / union:.4f}")
times = {f: [] for f in files}
for _ in range(int(sys.argv[1])):
    for f, it in zip(files, interps):
        for x in imgs[:10]:
            t = time.perf_counter(); run(it, x); times[f].append((time.perf_counter() - t) * 1e3)
for f in files:
    print(f"{f}: p50 {statistics.median(times[f]):.2f} ms")
