"""egeunet-bench --quick over every format that runs on Linux: PyTorch, ONNX, TFLite x3."""

import json
import subprocess
import sys

import pytest

from conftest import refusal

pytest.importorskip("onnx", reason="the bench reads exported files: pip install -e '.[export]'")


def test_bench_quick_reports_every_linux_format(tflite_exports, isic_root, tmp_path):
    from egeunet.export import export

    exports = tmp_path / "exports"
    exports.mkdir()
    export("onnx", out=exports / "onnx-fp32", data=isic_root, num_verify=2)
    for precision, (r, out) in tflite_exports.items():
        assert r.returncode == 0, r.stderr[-2000:]
        (exports / f"tflite-{precision}").symlink_to(out)
    report_path = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--quick", "--no-export", "--exports", str(exports),
                        "--data", str(isic_root), "--threads", "1", "2", "--json", str(report_path),
                        "--md", str(tmp_path / "bench.md")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert {"machine", "rows"} <= set(report) and report["machine"]["cores"] >= 1
    rows = {(row["format"], row["precision"]): row for row in report["rows"]}
    assert set(rows) == {("torch", "fp32"), ("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8"),
                         ("tflite", "int8-full")}
    for key, row in rows.items():
        assert row["status"] in ("ok", "parity-failed"), (key, row["reason"])
        assert row["size_bytes"] > 100_000
        assert 0.5 < row["dice_pooled"] <= 1.0 and 0.5 < row["dice_per_image"] <= 1.0
        assert set(row["latency_ms"]) == {"1", "2"}
        lat = row["latency_ms"]["1"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert row["fps"] > 0
    assert rows[("torch", "fp32")]["iou_vs_torch"] == 1.0
    assert rows[("onnx", "fp32")]["iou_vs_torch"] >= 0.999 and rows[("tflite", "fp32")]["iou_vs_torch"] >= 0.999
    assert rows[("tflite", "int8")]["ops"] > 0
    assert "| tflite | int8 |" in (tmp_path / "bench.md").read_text()
    # issue #6's goal figures, read off the same rows (no emulated core here: that one is unmeasured)
    goals = {g["goal"].split(" (")[0]: g for g in report["int8_goals"]}
    int8, fp32, torch_row = rows[("tflite", "int8")], rows[("tflite", "fp32")], rows[("torch", "fp32")]
    assert goals["int8 .tflite size"]["value"] == int8["size_bytes"]
    assert goals["int8 .tflite size"]["met"] == (int8["size_bytes"] <= 100_000)
    ratio = int8["latency_ms"]["1"]["p50"] / fp32["latency_ms"]["1"]["p50"]
    assert goals["int8 / fp32 .tflite latency"]["value"] == pytest.approx(ratio)
    assert goals["int8 / fp32 .tflite latency"]["met"] == (ratio <= 0.5)
    assert goals["int8 / fp32 instructions"]["met"] is None
    assert goals["int8 / fp32 instructions"]["measured"] == "not measured"
    assert goals["int8 pooled test Dice vs PyTorch fp32"]["value"] == pytest.approx(
        torch_row["dice_pooled"] - int8["dice_pooled"])
    assert goals["int8 mask IoU vs PyTorch fp32"]["value"] == int8["iou_vs_torch"]
    assert goals["fp32 .tflite / PyTorch eager latency"]["value"] == pytest.approx(
        fp32["latency_ms"]["1"]["p50"] / torch_row["latency_ms"]["1"]["p50"])
    assert "int8 deployment goal (issue #6)" in (tmp_path / "bench.md").read_text()


def test_bench_exports_missing_variants_then_plots(isic_root, tmp_path):
    """An empty --exports folder: the bench makes the ONNX file itself, then measures it."""
    from PIL import Image

    exports = tmp_path / "exports"
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--quick", "--exports", str(exports),
                        "--data", str(isic_root), "--threads", "1", "--formats", "torch", "onnx",
                        "--plots", str(tmp_path / "plots"), "--json", str(tmp_path / "b.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "b.json").read_text())
    assert [row["format"] for row in report["rows"]] == ["torch", "onnx"]
    assert (exports / "onnx-fp32" / "manifest.json").exists()
    assert report["rows"][1]["status"] == "ok" and report["rows"][1]["iou_vs_torch"] >= 0.999
    for name in ("latency_vs_size.png", "dice_per_format.png", "overlays.png"):
        with Image.open(tmp_path / "plots" / name) as im:
            assert im.size[0] > 300 and im.size[1] > 200


def test_bench_reports_a_failed_export_as_a_row(isic_root, tmp_path):
    not_a_dir = tmp_path / "exports"
    not_a_dir.write_text("a file where the exports folder should be")
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--quick", "--exports", str(not_a_dir),
                        "--data", str(isic_root), "--threads", "1", "--formats", "onnx",
                        "--json", str(tmp_path / "b.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    (row,) = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert (row["format"], row["precision"], row["status"]) == ("onnx", "fp32", "failed")
    assert row["reason"].startswith("export failed:") and "exports" in row["reason"]


def test_bench_with_weights_measures_that_model_and_exports_from_it(isic_root, tmp_path):
    """--weights: the PyTorch row, the parity reference and the missing exports all use the
    given checkpoint (the shipped EGE-UNet-BN, by name), not the default weights."""
    from egeunet.model.checkpoint import SHIPPED, file_sha256

    exports = tmp_path / "exports_bn"
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--quick", "--exports", str(exports),
                        "--weights", "egeunet-bn", "--data", str(isic_root), "--threads", "1",
                        "--formats", "torch", "onnx", "--json", str(tmp_path / "b.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    weights = SHIPPED["egeunet-bn"]
    assert rows[0]["format"] == "torch" and rows[0]["path"] == str(weights)
    assert rows[0]["size_bytes"] == weights.stat().st_size
    man = json.loads((exports / "onnx-fp32" / "manifest.json").read_text())
    assert man["model"]["name"] == "EGE-UNet-BN" and man["model"]["config"]["norms"] == "batch"
    assert man["weights_sha256"] == file_sha256(weights)
    assert rows[1]["status"] == "ok" and rows[1]["iou_vs_torch"] >= 0.999
    assert man["graph"]["nodes"] < 500  # BatchNorms fold: ~350 nodes, the default model ~790


def test_bench_refuses_files_made_from_other_weights_than_its_pytorch_row(tflite_exports, isic_root, tmp_path):
    """--weights egeunet-bn over the default model's files: no meaningless parity, a clear row."""
    r_fp32, out = tflite_exports["fp32"]
    assert r_fp32.returncode == 0, r_fp32.stderr[-2000:]
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "tflite-fp32").symlink_to(out)
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--quick", "--no-export", "--exports", str(exports),
                        "--weights", "egeunet-bn", "--data", str(isic_root), "--threads", "1",
                        "--formats", "tflite", "--json", str(tmp_path / "b.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    (row,) = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert (row["format"], row["precision"], row["status"]) == ("tflite", "fp32", "failed")
    assert "other weights" in row["reason"] and "--exports" in row["reason"]
    assert row["iou_vs_torch"] is None


@pytest.mark.parametrize("args, message", [
    (["--formats", "bogus", "onnx"], "--formats: unknown bogus (choose from: torch, "),
    (["--exports", "nonexistent", "--no-export"], "--exports nonexistent: no such folder"),
    (["--threads", "-1"], "--threads: must be >= 1"),
    (["--min-iou", "nan"], "--min-iou: must lie in [0, 1]"),
    (["--json", "adir"], "--json adir: is a folder; give a file name"),
    (["--md", "afile/b.md"], "--md afile/b.md: afile is a file, not a folder"),
])
def test_bad_bench_arguments_are_refused_before_any_work(args, message, isic_root, tmp_path, capsys, monkeypatch):
    from egeunet.cli import bench_main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    assert message in refusal(bench_main, ["--quick", "--data", str(isic_root), *args], capsys)
    assert not (tmp_path / "exports").exists()


def test_bench_names_a_malformed_manifest(isic_root, tmp_path, capsys):
    from egeunet.cli import bench_main

    (tmp_path / "exports" / "odd").mkdir(parents=True)
    (tmp_path / "exports" / "odd" / "manifest.json").write_text("{}")
    assert bench_main(["--quick", "--no-export", "--exports", str(tmp_path / "exports"), "--data", str(isic_root),
                       "--threads", "1", "--formats", "onnx", "--json", str(tmp_path / "new" / "b.json")]) == 2
    err = capsys.readouterr().err
    assert "odd/manifest.json: not a complete manifest (no 'file', 'target'" in err and "Traceback" not in err, err
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "b.json").exists()  # folder made up front


def test_bench_api_refuses_a_thread_count_below_one(tmp_path):
    """The CLI's argparse type refuses it first; Python callers of run() meet check_inputs."""
    from egeunet.benchmarks.bench import run

    with pytest.raises(ValueError, match="--threads must be >= 1 .got 1 0"):
        run(exports=tmp_path, threads=(1, 0))
