"""Which part of EGE-UNet costs how much accuracy when quantized to full int8.

    python -m egeunet.benchmarks.int8_sensitivity --data ../shared/data/isic2018 --md sens.md

The network is calibrated once on training images; then, in seconds each, int8 files are
made with one block (name scope of :mod:`egeunet.export.tf_graph`: enc0..enc5, dec0..dec4,
gab0..gab4, head) or one op type kept in float, on top of the ``int8-full`` export's own
float ops. Each row reports mask IoU and Dice against PyTorch fp32 and pooled Dice against
the ground truth on test images, the file's size, op count and XNNPACK partitions, and
the change against the all-int8 baseline, so the choice of what stays float is measured.
Timings here are in-process and indicative only; ``egeunet-bench`` measures latency.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

from egeunet.export.tflite_export import FULL_INT8_FLOAT_OPS, FULL_INT8_GRAPH, op_counts

OP_TYPES = ("MEAN", "MUL", "ADD", "SUB", "CONV_2D", "DEPTHWISE_CONV_2D", "RESIZE_BILINEAR", "CONCATENATION")


def _first_error(text: str) -> str:
    """LiteRT's allocate_tensors error, first line, 120 characters; its messages arrive glued
    together ("... node #410Node number 848 ..."), so they are separated with "; "."""
    return re.sub(r"(?<=\S)(?=Node number \d)", "; ", text.splitlines()[0] if text else "")[:120]


def _score(model: bytes, images: np.ndarray, ref_logits: np.ndarray, masks: np.ndarray, timing_runs: int) -> dict:
    from egeunet.metrics import SegmentationMeter
    from egeunet.runtimes.litert_runtime import load_interpreter_class

    interp = load_interpreter_class()(model_content=model, num_threads=1)
    try:
        interp.allocate_tensors()
    except RuntimeError as e:  # XNNPACK refuses some mixed float/int8 graphs
        return {"status": "does not run", "reason": _first_error(str(e))}
    ops = op_counts(interp)
    partitions = ops.pop("DELEGATE", 0)
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    agree, truth = SegmentationMeter(), SegmentationMeter()
    for img, ref, m in zip(images, ref_logits, masks):
        interp.set_tensor(i["index"], img[None].astype(i["dtype"]))
        interp.invoke()
        pred = interp.get_tensor(o["index"])[0, :, :, 0] >= 0
        agree.update(pred, ref >= 0)
        truth.update(pred, m > 0)
    times = []
    for _ in range(timing_runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1000)
    return {"status": "ok", "bytes": len(model), "ops": int(sum(ops.values())), "partitions": partitions,
            "iou_vs_torch": agree.pooled()["iou"], "dice_vs_torch": agree.pooled()["dice"],
            "dice_pooled": truth.pooled()["dice"], "ms_indicative": float(np.median(times)) if times else None}


def run(data=None, n_test: int = 64, n_calib: int = 100, timing_runs: int = 20, weights=None) -> dict:
    from egeunet.data import SegmentationFolder, resolve_data_root
    from egeunet.export import tflite_convert as tc
    from egeunet.export.tf_graph import TFEGEUNet
    from egeunet.export.verify import reference_logits
    from egeunet.model.checkpoint import load_checkpoint

    model, pre, _ = load_checkpoint(weights)  # None: the shipped default weights
    folder = SegmentationFolder(resolve_data_root(data))
    test = folder.load_split("test", pre.size, n_test)
    calib = folder.load_split("train", pre.size, n_calib).images
    ref = reference_logits(model, test.images, pre)
    graph = TFEGEUNet(model, pre, **FULL_INT8_GRAPH)  # the int8-full export's graph
    calibrated = tc.calibrate(graph, calib)
    outputs = tc.op_outputs(calibrated)  # (op, output tensor) of every op, read once
    scopes = sorted({tc.block_of(name) for _, name in outputs},
                    key=lambda s: (["input", "enc", "dec", "gab", "head"].index(re.sub(r"\d", "", s)), s))

    def variant(name: str, blocks=(), op_types=()) -> dict:
        nodes = tc.nodes_matching(outputs, blocks, op_types)
        row = {"float": name, "n_float_ops": len(nodes)}
        row.update(_score(tc.quantize(calibrated, nodes), test.images, ref, test.masks, timing_runs))
        return row

    default_float = tuple(FULL_INT8_FLOAT_OPS)
    rows = [variant("nothing (all int8)"), variant("+".join(default_float) + " (the int8-full export)",
                                                   op_types=default_float)]
    rows += [variant(f"block {s}", blocks=(s,), op_types=default_float) for s in scopes]
    rows += [variant(f"op {t}", op_types=default_float + (t,)) for t in OP_TYPES]
    base = rows[1]
    for r in rows:
        if r["status"] == "ok" and base["status"] == "ok":
            r["delta_iou"] = r["iou_vs_torch"] - base["iou_vs_torch"]
            r["delta_dice_pooled"] = r["dice_pooled"] - base["dice_pooled"]
    from egeunet.benchmarks.bench import machine_info

    return {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "n_test": len(test), "n_calib": len(calib),
            "baseline": base["float"], "rows": rows}


def markdown(report: dict) -> str:
    lines = ["| kept float | float ops | status | bytes | ops | XNNPACK partitions | IoU vs torch | Δ IoU | "
             "Dice (truth) | Δ Dice | ms (indicative) |", "|" + "---|" * 11]
    for r in report["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['float']} | {r['n_float_ops']} | {r['status']}: {r['reason']} |" + " |" * 8)
            continue
        lines.append(f"| {r['float']} | {r['n_float_ops']} | ok | {r['bytes']:,} | {r['ops']} | {r['partitions']} | "
                     f"{r['iou_vs_torch']:.4f} | {r.get('delta_iou', 0):+.4f} | {r['dice_pooled']:.4f} | "
                     f"{r.get('delta_dice_pooled', 0):+.4f} | "
                     f"{'—' if r['ms_indicative'] is None else format(r['ms_indicative'], '.2f')} |")
    m = report["machine"]
    lines.append(f"\nΔ against \"{report['baseline']}\"; {report['n_test']} test images, {report['n_calib']} calibration "
                 f"images; {m['cpu']}; {report['date']}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="data root (default $EGEUNET_DATA or ../shared/data/isic2018)")
    p.add_argument("--n-test", type=int, default=64)
    p.add_argument("--n-calib", type=int, default=100)
    p.add_argument("--timing-runs", type=int, default=20)
    p.add_argument("--weights", help="checkpoint or shipped name (egeunet, egeunet-bn); default: the shipped weights")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--md", dest="md_out")
    a = p.parse_args(argv)
    from egeunet.benchmarks.bench import write_report

    report = run(a.data, a.n_test, a.n_calib, a.timing_runs, a.weights)
    write_report(report, markdown(report), a.json_out, a.md_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
