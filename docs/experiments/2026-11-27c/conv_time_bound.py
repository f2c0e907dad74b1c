"""How much of a .tflite file's time its convolutions are: every CONV_2D and DEPTHWISE_CONV_2D of
the file rebuilt with its own weights, shapes, strides and dilations into one model that runs
them all side by side (one input and one output per conv), converted three ways: float32,
TensorFlow's dynamic-range int8 (what `egeunet-export --int8` starts from) and full int8 (int8
in and out: the fastest int8 these convs can run). Interleaved p50 with the whole fp32 and int8
files, 1 thread. If int8 made every conv free and left the rest float, a file would still take
(whole fp32 - all convs fp32); that bounds the int8/fp32 ratio any int8 form of this graph with
float normalisation can reach. PyTorch eager (``--weights``, 1 thread) is timed in the same
rounds, for the fp32/eager goal. With ``--emulate CPU`` (needs `egeunet-armlab setup`), the
five models' aarch64 instructions per inference as well (only the first input is set: these
kernels' instruction counts do not depend on the values).

    python docs/experiments/2026-11-27c/conv_time_bound.py exports/tflite-fp32/egeunet_fp32.tflite exports/tflite-int8/egeunet_int8.tflite --emulate cortex-a76
    python docs/experiments/2026-11-27c/conv_time_bound.py exports_bn/tflite-fp32/egeunet_fp32.tflite exports_bn/tflite-int8/egeunet_int8.tflite --weights egeunet-bn --emulate cortex-a76
"""
import argparse
import time

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils as fu

ap = argparse.ArgumentParser()
ap.add_argument("fp32_file")
ap.add_argument("int8_file")
ap.add_argument("--weights", default=None, help="checkpoint for the eager timing (default: the shipped EGE-UNet)")
ap.add_argument("--emulate", metavar="CPU", default=None)
args = ap.parse_args()
fp32_file, int8_file, cpu = args.fp32_file, args.int8_file, args.emulate
m = fu.read_model(fp32_file)
g = m.subgraphs[0]
codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
convs = []
for op in g.operators:
    kind = codes[m.operatorCodes[op.opcodeIndex].builtinCode]
    if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        continue
    x, w, b = (g.tensors[i] for i in op.inputs[:3])
    wv = np.frombuffer(bytes(m.buffers[w.buffer].data), np.float32).reshape(w.shape)
    bv = np.frombuffer(bytes(m.buffers[b.buffer].data), np.float32) if len(op.inputs) > 2 and op.inputs[2] >= 0 else 0
    o = op.builtinOptions
    convs.append((kind, tuple(x.shape), wv, bv, o.strideH, o.dilationHFactor,
                  "SAME" if o.padding == schema.Padding.SAME else "VALID"))
print(f"{len(convs)} convolutions in {fp32_file}")


def run_all(*xs):
    outs = []
    for x, (kind, _, w, b, s, d, pad) in zip(xs, convs):
        if kind == "CONV_2D":
            y = tf.nn.conv2d(x, np.transpose(w, (1, 2, 3, 0)), s, pad, dilations=d)
        else:
            y = tf.nn.depthwise_conv2d(x, np.transpose(w, (1, 2, 3, 0)), [1, s, s, 1], pad, dilations=[d, d])
        outs.append(y + b)
    return outs


spec = [tf.TensorSpec(c[1], tf.float32) for c in convs]
fn = tf.function(run_all, input_signature=spec).get_concrete_function()


def convert(mode):
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], None)
    if mode != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "full":
        rng = np.random.default_rng(0)
        conv.representative_dataset = lambda: ([rng.standard_normal(c[1]).astype(np.float32) for c in convs] for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


models = {"file fp32": open(fp32_file, "rb").read(), "file int8": open(int8_file, "rb").read(),
          "convs fp32": convert("fp32"), "convs dynamic-range int8": convert("dynamic"), "convs full int8": convert("full")}
its = {}
for name, blob in models.items():
    it = Interpreter(model_content=blob, num_threads=1)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.random.default_rng(0).integers(0 if d["dtype"] == np.uint8 else -100, 100, d["shape"]).astype(d["dtype"]))
    for _ in range(5):
        it.invoke()
    its[name] = it
from egeunet.runtimes.torch_runtime import TorchRuntime  # noqa: E402

eager = TorchRuntime(args.weights, threads=1)
x_eager = np.random.default_rng(0).standard_normal((1, 3, eager.pre.size, eager.pre.size)).astype(np.float32)
for _ in range(3):
    eager._run(x_eager)
times = {n: [] for n in [*its, "PyTorch eager"]}
for _ in range(7):
    for name, it in its.items():
        for _ in range(20):
            t0 = time.perf_counter()
            it.invoke()
            times[name].append((time.perf_counter() - t0) * 1000)
    for _ in range(5):
        t0 = time.perf_counter()
        eager._run(x_eager)
        times["PyTorch eager"].append((time.perf_counter() - t0) * 1000)


def report(values: dict, column: str, fmt) -> None:
    """The table of ``values`` and the bounds they give (``fmt`` writes one value)."""
    print(f"\n| model | {column} |\n|---|---:|")
    for n, v in values.items():
        print(f"| {n} | {fmt(v)} |")
    rest = values["file fp32"] - values["convs fp32"]
    print(f"\nfp32 file without its convolutions: {fmt(rest)}; int8/fp32 if every conv ran as full int8 and the "
          f"rest stayed float: {(rest + values['convs full int8']) / values['file fp32']:.2f}x; if convs were free: "
          f"{rest / values['file fp32']:.2f}x")


ms = {n: float(np.median(v)) for n, v in times.items()}
report(ms, "ms p50", lambda v: f"{v:.2f} ms")
print(f"fp32 file / eager {ms['file fp32'] / ms['PyTorch eager']:.2f}x; its convolutions alone / eager "
      f"{ms['convs fp32'] / ms['PyTorch eager']:.2f}x")

if cpu:
    import tempfile
    from pathlib import Path

    from egeunet.benchmarks import emulate

    lab = emulate.Lab()
    counts = {}
    with tempfile.TemporaryDirectory() as d:
        for name, blob in models.items():
            path = Path(d) / (name.replace(" ", "_") + ".tflite")
            path.write_bytes(blob)
            shape = its[name].get_input_details()[0]["shape"]
            counts[name] = emulate.count_instructions(lab, cpu, path, np.zeros((1, *shape), np.float32))["per_inference"]["total"]
    report(counts, f"{cpu} instructions / inference", lambda v: f"{v / 1e6:.1f} M")
