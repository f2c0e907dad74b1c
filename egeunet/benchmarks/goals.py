"""The int8 deployment goals (issue #6), read off one ``egeunet-bench`` report.

Each goal compares rows of the same run, so a report answers them on its own:
``egeunet-bench --formats torch tflite-fp32 tflite-int8 --threads 1 --emulate cortex-a76``
gives every figure. A goal whose rows are missing from the report (a format not asked for,
no emulated core, a failed row) is listed as "not measured", never as met. An int8 row that is
``parity-failed`` (mask IoU vs PyTorch under ``--min-iou``) was measured, and is judged.

The int8 file is the default one, ``egeunet-export --target tflite --int8``.
"""

from __future__ import annotations

INT8_MAX_BYTES = 100_000  # "<= 100 KB"
INT8_VS_FP32_MAX = 0.5  # int8 latency (and emulated instructions) at most half of fp32's
DICE_MAX_DROP = 0.003  # "within 0.3 points" of PyTorch fp32's pooled test Dice
IOU_MIN = 0.99  # int8 masks against PyTorch's
FP32_VS_TORCH_MAX = 0.25  # the fp32 .tflite at most a quarter of PyTorch eager's latency
EMULATED_CORE = "qemu cortex-a76"  # how devices._emulated_rows names the row's device


def _row(report: dict, fmt: str, precision: str, device: str | None = None,
         statuses: tuple[str, ...] = ("ok",)) -> dict | None:
    """The report's row of a file with one of ``statuses``; ``device`` None: this machine's, else
    the first whose device starts with it."""
    for r in report["rows"]:
        here = r.get("device") is None if device is None else (r.get("device") or "").startswith(device)
        if r["format"] == fmt and r["precision"] == precision and here and r["status"] in statuses:
            return r
    return None


def _p50_1(row: dict | None) -> float | None:
    return ((row or {}).get("latency_ms") or {}).get("1", {}).get("p50")


def _goal(name: str, target: str, value: float | None, shown: str, met: bool | None) -> dict:
    return {"goal": name, "target": target, "value": value, "measured": shown if value is not None else "not measured",
            "met": met if value is not None else None}


def deployment_goals(report: dict) -> list[dict]:
    """The five figures of issue #6 (size, int8 speed on x86 and on an emulated A76, Dice,
    mask agreement, fp32 speed against PyTorch) with whether each is met."""
    # A parity-failed int8 row is measured: its masks differ from PyTorch's by more than --min-iou,
    # which is what the IoU and Dice goals judge ("not measured" there hid a goal not met).
    torch_row, fp32 = _row(report, "torch", "fp32"), _row(report, "tflite", "fp32")
    int8 = _row(report, "tflite", "int8", statuses=("ok", "parity-failed"))
    goals = []
    size = int8["size_bytes"] if int8 else None
    goals.append(_goal("int8 .tflite size", f"<= {INT8_MAX_BYTES:,} bytes", size, f"{size:,} bytes" if size else "",
                       size is not None and size <= INT8_MAX_BYTES))
    t8, t32, tt = _p50_1(int8), _p50_1(fp32), _p50_1(torch_row)
    ratio = t8 / t32 if t8 and t32 else None
    goals.append(_goal("int8 / fp32 .tflite latency (p50, 1 thread, this machine)", f"<= {INT8_VS_FP32_MAX}x", ratio,
                       f"{t8:.2f} / {t32:.2f} ms = {ratio:.2f}x" if ratio else "", ratio is not None and ratio <= INT8_VS_FP32_MAX))
    e8 = (_row(report, "tflite", "int8", EMULATED_CORE) or {}).get("instructions_per_inference")
    e32 = (_row(report, "tflite", "fp32", EMULATED_CORE) or {}).get("instructions_per_inference")
    ratio = e8 / e32 if e8 and e32 else None
    goals.append(_goal("int8 / fp32 instructions (emulated cortex-a76)", f"<= {INT8_VS_FP32_MAX}x", ratio,
                       f"{e8 / 1e6:.1f} M / {e32 / 1e6:.1f} M = {ratio:.2f}x" if ratio else "",
                       ratio is not None and ratio <= INT8_VS_FP32_MAX))
    d8, dt = (int8 or {}).get("dice_pooled"), (torch_row or {}).get("dice_pooled")
    drop = dt - d8 if d8 is not None and dt is not None else None
    goals.append(_goal("int8 pooled test Dice vs PyTorch fp32", f"drop <= {DICE_MAX_DROP * 100:.1f} points", drop,
                       f"{d8:.4f} vs {dt:.4f} ({-drop * 100:+.3f} points)" if drop is not None else "",
                       drop is not None and drop <= DICE_MAX_DROP))
    iou = (int8 or {}).get("iou_vs_torch")
    goals.append(_goal("int8 mask IoU vs PyTorch fp32", f">= {IOU_MIN}", iou, f"{iou:.4f}" if iou is not None else "",
                       iou is not None and iou >= IOU_MIN))
    ratio = t32 / tt if t32 and tt else None
    goals.append(_goal("fp32 .tflite / PyTorch eager latency (p50, 1 thread, this machine)", f"<= {FP32_VS_TORCH_MAX}x",
                       ratio, f"{t32:.2f} / {tt:.2f} ms = {ratio:.2f}x" if ratio else "",
                       ratio is not None and ratio <= FP32_VS_TORCH_MAX))
    return goals


def markdown(goals: list[dict]) -> str:
    lines = ["| int8 deployment goal (issue #6) | target | this run | met |", "|---|---|---|---|"]
    for g in goals:
        met = "—" if g["met"] is None else ("yes" if g["met"] else "no")
        lines.append(f"| {g['goal']} | {g['target']} | {g['measured']} | {met} |")
    return "\n".join(lines)
