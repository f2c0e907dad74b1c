"""The int8 deployment goals' verdicts (egeunet.benchmarks.goals) on reports shaped like
egeunet-bench's: every goal met, none met, and rows missing. The figures themselves are
checked against real bench rows in test_bench.py and test_emulate.py."""

import pytest

from egeunet.benchmarks.goals import deployment_goals

A76 = "qemu cortex-a76 (Raspberry Pi 5, phone big core), 1 thread"  # as devices._emulated_rows names it


def _row(fmt, precision, device=None, status="ok", **kw):
    return {"format": fmt, "precision": precision, "device": device, "status": status, **kw}


def _report(size, t_int8, t_fp32, t_torch, insn_int8, insn_fp32, dice_int8, dice_torch, iou):
    return {"rows": [
        _row("torch", "fp32", latency_ms={"1": {"p50": t_torch}}, dice_pooled=dice_torch, iou_vs_torch=1.0),
        _row("tflite", "fp32", size_bytes=300_000, latency_ms={"1": {"p50": t_fp32}}, dice_pooled=dice_torch),
        _row("tflite", "int8", size_bytes=size, latency_ms={"1": {"p50": t_int8}}, dice_pooled=dice_int8,
             iou_vs_torch=iou),
        _row("tflite", "fp32", A76, instructions_per_inference=insn_fp32, latency_ms={}),
        _row("tflite", "int8", A76, instructions_per_inference=insn_int8, latency_ms={}),
    ]}


def _verdicts(report):
    return [g["met"] for g in deployment_goals(report)]


def test_every_goal_met():
    report = _report(size=90_000, t_int8=2.0, t_fp32=5.0, t_torch=25.0, insn_int8=40e6, insn_fp32=100e6,
                     dice_int8=0.899, dice_torch=0.900, iou=0.995)
    assert _verdicts(report) == [True] * 6
    assert [round(g["value"], 4) for g in deployment_goals(report)] == [90_000, 0.4, 0.4, 0.001, 0.995, 0.2]


def test_no_goal_met():
    report = _report(size=100_001, t_int8=2.6, t_fp32=5.0, t_torch=19.0, insn_int8=51e6, insn_fp32=100e6,
                     dice_int8=0.8969, dice_torch=0.900, iou=0.9899)
    assert _verdicts(report) == [False] * 6


def test_missing_or_failed_rows_are_not_measured_never_met():
    report = _report(size=90_000, t_int8=2.0, t_fp32=5.0, t_torch=25.0, insn_int8=40e6, insn_fp32=100e6,
                     dice_int8=0.899, dice_torch=0.900, iou=0.995)
    report["rows"] = [r for r in report["rows"] if not (r["device"] and r["precision"] == "fp32")]  # no emulated fp32
    report["rows"][1]["status"] = "parity-failed"  # the x86 fp32 row
    goals = {g["goal"].split(" (")[0]: g for g in deployment_goals(report)}
    for name in ("int8 / fp32 .tflite latency", "int8 / fp32 instructions", "fp32 .tflite / PyTorch eager latency"):
        assert goals[name]["met"] is None and goals[name]["measured"] == "not measured", name
    assert goals["int8 .tflite size"]["met"] is True and goals["int8 mask IoU vs PyTorch fp32"]["met"] is True


@pytest.mark.parametrize("drop, met", [(0.0029, True), (0.0031, False), (-0.01, True)])
def test_dice_goal_is_a_drop_of_at_most_three_tenths_of_a_point(drop, met):
    report = _report(size=90_000, t_int8=2.0, t_fp32=5.0, t_torch=25.0, insn_int8=40e6, insn_fp32=100e6,
                     dice_int8=0.9 - drop, dice_torch=0.9, iou=0.995)
    assert _verdicts(report)[3] is met


def test_a_parity_failed_int8_row_is_judged_not_unmeasured():
    """--min-iou above the int8 file's IoU (0.9986 < 0.999) made every int8 goal "not measured",
    including the IoU goal it meets and the size goal it misses."""
    report = _report(size=196_496, t_int8=7.45, t_fp32=8.40, t_torch=14.46, insn_int8=40e6, insn_fp32=100e6,
                     dice_int8=0.9316, dice_torch=0.9315, iou=0.9986)
    report["rows"][2]["status"] = "parity-failed"
    goals = {g["goal"].split(" (")[0]: g for g in deployment_goals(report)}
    assert goals["int8 .tflite size"]["met"] is False
    assert goals["int8 mask IoU vs PyTorch fp32"]["met"] is True
    assert goals["int8 / fp32 .tflite latency"]["met"] is False
    report["rows"][2]["iou_vs_torch"] = 0.85  # a badly broken int8 file: a goal not met, not unmeasured
    assert {g["goal"]: g["met"] for g in deployment_goals(report)}["int8 mask IoU vs PyTorch fp32"] is False
