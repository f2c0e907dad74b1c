"""The int8 sensitivity report: one row per block / op type kept float, each a real int8 file
scored against PyTorch and the ground truth."""

import pytest

pytest.importorskip("tensorflow", reason="the report converts TFLite files: pip install -e '.[export]'")


@pytest.mark.parametrize("weights", [None, "egeunet-bn"])
def test_sensitivity_report_scores_every_block(isic_root, weights):
    from egeunet.benchmarks.int8_sensitivity import markdown, run

    report = run(isic_root, n_test=4, n_calib=8, timing_runs=0, weights=weights)
    rows = {r["float"]: r for r in report["rows"]}
    base = rows[report["baseline"]]
    assert base["status"] == "ok" and 0.5 < base["iou_vs_torch"] <= 1.0 and base["partitions"] >= 1
    blocks = {name.split()[1] for name in rows if name.startswith("block ")}
    assert {"enc0", "enc5", "dec0", "dec4", "gab0", "gab4", "head"} <= blocks
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) >= 10
    # keeping more ops float makes the file carry float constants and more QUANTIZE/DEQUANTIZE pairs
    assert rows["nothing (all int8)"]["n_float_ops"] == 0 < base["n_float_ops"]
    for r in ok:
        assert 0.0 < r["dice_pooled"] <= 1.0 and r["bytes"] > 100_000
    for r in rows.values():
        assert r["status"] == "ok" or r["reason"]  # a graph XNNPACK refuses says why
    assert "| block enc0 |" in markdown(report)


def test_bench_includes_the_sensitivity_report(isic_root, tmp_path):
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--quick", "--no-export", "--exports",
                        str(tmp_path / "none"), "--data", str(isic_root), "--formats", "torch", "--threads", "1",
                        "--int8-sensitivity", "--json", str(tmp_path / "b.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "b.json").read_text())
    assert [row["format"] for row in report["rows"]] == ["torch"]
    sens = report["int8_sensitivity"]
    assert sens["n_test"] == 16 and any(row["float"] == "block head" for row in sens["rows"])
    assert "| block head |" in r.stdout


def test_litert_messages_glued_together_are_separated():
    from egeunet.benchmarks.int8_sensitivity import _first_error

    glued = ("failed to delegate CONCATENATION node #410Node number 848 (TfLiteXNNPackDelegate) failed to prepare.\n"
             "second line")
    assert _first_error(glued) == ("failed to delegate CONCATENATION node #410; Node number 848 "
                                   "(TfLiteXNNPackDelegate) failed to prepare.")
    assert _first_error("Node number 3 failed") == "Node number 3 failed" and len(_first_error("x" * 500)) == 120
