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


# --- measurement audit: each test below failed before its fix -----------------------------------

def _report(rows, threads=(1,)):
    return {"machine": {"cpu": "cpu", "cores": 2}, "date": "2026-11-26", "n_images": 4, "threads": list(threads),
            "rows": rows}


def _row(fmt, precision, status="ok", reason="", p50=None, threads=(1,), **kw):
    lat = {str(t): {"p50": p50 * (1 + k), "p90": p50, "p99": p50, "runs": 3, "other_load_percent": 0.0}
           for k, t in enumerate(threads)} if p50 else {}
    base = {"format": fmt, "precision": precision, "status": status, "reason": reason, "size_bytes": 200_000,
            "ops": 10, "dice_pooled": 0.9 if p50 else None, "dice_per_image": 0.9 if p50 else None,
            "iou_vs_torch": 1.0 if p50 else None, "dice_vs_torch": 1.0 if p50 else None, "latency_ms": lat,
            "fps": 1000 / lat[str(threads[0])]["p50"] if p50 else None, "busy_cpu_percent": 0.0 if p50 else None}
    return {**base, **kw}


def _cells(line):
    import re

    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_fps_column_names_the_thread_count_its_figure_was_measured_at():
    """fps is 1000 / p50 at threads[0]; with --threads 2 1 the column said "FPS @1" over the 2-thread figure."""
    from egeunet.benchmarks.bench import markdown

    report = _report([_row("tflite", "fp32", p50=5.0, threads=(2, 1))], threads=(2, 1))
    lines = markdown(report).splitlines()
    head, row = _cells(lines[0]), _cells(lines[2])
    fps = dict(zip(head, row))[next(h for h in head if h.startswith("FPS"))]
    t = next(h for h in head if h.startswith("FPS")).split("@")[1]
    assert float(fps) == pytest.approx(1000 / report["rows"][0]["latency_ms"][t]["p50"], abs=0.05), (head, row)


def test_a_reason_holding_a_pipe_keeps_the_table_columns():
    from egeunet.benchmarks.bench import markdown

    report = _report([_row("onnx", "fp32", status="failed", reason="ONNX Runtime cannot load it (a | b)"),
                      _row("tflite", "fp32", p50=5.0)])
    lines = markdown(report).splitlines()
    assert len(_cells(lines[2])) == len(_cells(lines[0])) == len(_cells(lines[3]))


def test_plots_of_a_report_where_no_row_was_measured(tmp_path):
    """--formats coreml --plots on Linux: every row fails; the plots crashed (min() of nothing) and
    the bench wrote no report at all."""
    import numpy as np

    from egeunet.benchmarks.plots import write_plots

    report = _report([_row("coreml", "fp16", status="failed", reason="Core ML prediction needs macOS")])
    images = np.zeros((2, 8, 8, 3), np.uint8)
    paths = write_plots(report, tmp_path, images, {"truth": [np.zeros((8, 8), bool)] * 2})
    assert all(p.stat().st_size > 0 for p in paths)


def _fake_worker(monkeypatch, seconds=1.0):
    """The latency worker replaced by a child that keeps ONE core busy for ``seconds`` whatever
    --threads says, then prints times as the real worker does."""
    from egeunet.benchmarks import bench

    real = subprocess.run
    code = ("import json, time\nt = time.perf_counter()\nwhile time.perf_counter() - t < %s: pass\n"
            "print(json.dumps({'times_ms': [1.0, 2.0, 3.0]}))" % seconds)
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: real([sys.executable, "-c", code], **kw))


def test_other_load_is_seen_when_threads_cover_every_core(monkeypatch):
    """Other load was the machine's busy share minus an assumed `threads` cores for the worker: at
    threads >= cores it was 0 whatever else ran (measured: p50 4.15 -> 9.30 ms under one busy
    core, other_load_percent 0.0). Here the worker uses one core, busy loops the others."""
    import os
    from pathlib import Path

    from egeunet.benchmarks.bench import measure_latency

    ncpu = os.cpu_count() or 1
    if ncpu < 2 or not Path("/proc/stat").exists():
        pytest.skip("needs /proc/stat and 2 cores")
    _fake_worker(monkeypatch, 1.5)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(ncpu - 1)]
    try:
        lat = measure_latency(None, ncpu, 3, 0)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert lat["other_load_percent"] >= 25, lat  # ideally 100 * (ncpu - 1) / ncpu


def test_latency_without_proc_stat_is_measured_not_a_crash(monkeypatch):
    """macOS (the only system where Core ML rows run) has no /proc/stat: the bench stopped at its
    first latency with FileNotFoundError."""
    import builtins

    from egeunet.benchmarks.bench import measure_latency

    real_open = builtins.open

    def no_proc_stat(file, *a, **kw):
        if str(file) == "/proc/stat":
            raise FileNotFoundError(2, "No such file or directory", file)
        return real_open(file, *a, **kw)

    _fake_worker(monkeypatch, 0.1)
    monkeypatch.setattr(builtins, "open", no_proc_stat)
    lat = measure_latency(None, 1, 3, 0)
    assert lat["p50"] == 2.0 and lat["runs"] == 3 and lat["other_load_percent"] is None


def test_parity_reason_does_not_round_the_iou_up_to_the_limit(isic_root, tmp_path, monkeypatch):
    """IoU 0.99864 under --min-iou 0.999 read "mask IoU vs torch 0.999 < 0.999"."""
    from egeunet.benchmarks import bench

    monkeypatch.setattr(bench, "accuracy", lambda *a, **kw: (
        {"dice_pooled": 0.9, "dice_per_image": 0.9, "iou_vs_torch": 0.99864, "dice_vs_torch": 0.9993}, []))
    monkeypatch.setattr(bench, "measure_latency", lambda *a: {"p50": 5.0, "p90": 5.0, "p99": 5.0, "runs": 3,
                                                             "other_load_percent": 0.0})
    report = bench.run(tmp_path, isic_root, (1,), quick=True, formats=["torch"], min_iou=0.999, make_missing=False)
    (row,) = report["rows"]
    assert row["status"] == "parity-failed"
    shown = float(row["reason"].split("torch ")[1].split(" <")[0])
    assert shown < 0.999, row["reason"]


def test_bytes_and_ops_are_those_of_the_file_measured(isic_root, tmp_path):
    """A file changed after its export (e.g. tflite_compact.float_weights_to_int8 in place: 196,496 ->
    191,248 bytes, more ops) kept the manifest's bytes and op count beside the new file's Dice and latency."""
    import onnx

    from egeunet.benchmarks.bench import run
    from egeunet.export import export

    exports = tmp_path / "exports"
    export("onnx", out=exports / "onnx-fp32", data=isic_root, num_verify=2)
    (f,) = (exports / "onnx-fp32").glob("*.onnx")
    model = onnx.load(f)
    model.doc_string = "changed after export " * 100  # same graph, 2 KB more
    onnx.save(model, f)
    report = run(exports, isic_root, (1,), quick=True, formats=["onnx"], make_missing=False)
    (row,) = report["rows"]
    assert row["status"] == "ok", row["reason"]
    assert row["size_bytes"] == f.stat().st_size
    assert row["ops"] is None  # the manifest's count describes another file


@pytest.mark.parametrize("code, message", [
    ("print('done')", "latency worker printed no timings (stdout: 'done')"),
    ("import time; time.sleep(30)", "latency worker did not finish within 1 s"),
])
def test_a_worker_that_prints_nothing_or_hangs_is_a_failed_row_reason(monkeypatch, code, message):
    from egeunet.benchmarks import bench

    real = subprocess.run
    monkeypatch.setattr(bench, "LATENCY_TIMEOUT_S", 1)
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: real([sys.executable, "-c", code], **kw))
    with pytest.raises(RuntimeError) as e:  # the row loop turns a RuntimeError into a failed row
        bench.measure_latency(None, 1, 3, 0)
    assert str(e.value) == message


# --- second CLI audit: each test below failed before its fix -----------------------------------

def _manifest_only(folder, target, precision, **extra):
    """A complete manifest.json (no model file beside it: these runs stop before reading one)."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"file": f"m.{target}", "target": target, "precision": precision,
                                                      "io": {}, "preprocessing": {}, **extra}))


@pytest.mark.parametrize("args, message", [
    # an empty folder: the table had no row at all, and the run exited 0
    (["--no-export", "--formats", "onnx"], "--formats onnx: nothing in --exports exports to measure"),
    # onnx asked for, only tflite there: the onnx row silently vanished
    (["--no-export", "--formats", "tflite", "onnx"], "--formats onnx: nothing in --exports exports to measure"),
    # the bench exports only the default variants: an onnx2tf file is never made for it
    (["--formats", "tflite/onnx2tf"], "--formats tflite/onnx2tf: nothing in --exports exports to measure"),
])
def test_formats_that_select_no_file_are_refused_before_any_work(args, message, isic_root, tmp_path, capsys,
                                                                 monkeypatch):
    from egeunet.benchmarks import bench
    from egeunet.cli import bench_main

    monkeypatch.chdir(tmp_path)
    _manifest_only(tmp_path / "exports" / "tflite-int8", "tflite", "int8")
    monkeypatch.setattr(bench, "ensure_exports", lambda *a, **kw: pytest.fail("exported before refusing"))
    err = refusal(bench_main, ["--quick", "--data", str(isic_root), "--threads", "1", "--json", "b.json", *args],
                  capsys)
    assert message in err, err
    assert not (tmp_path / "b.json").exists()


def test_a_thread_count_given_twice_is_refused(isic_root, tmp_path, capsys, monkeypatch):
    """--threads 1 1 timed everything twice and printed two "ms p50 @1" columns holding the
    second figure both."""
    from egeunet.cli import bench_main

    monkeypatch.chdir(tmp_path)
    err = refusal(bench_main, ["--quick", "--data", str(isic_root), "--formats", "torch", "--threads", "1", "2", "1"],
                  capsys)
    assert "--threads 1 2 1: 1 given twice" in err, err


def test_plots_interrupted_while_drawing_leave_no_half_written_png(tmp_path, monkeypatch):
    """Ctrl-C while matplotlib writes a PNG left a truncated file in --plots (savefig wrote straight
    to the final name, replacing the previous run's good plot)."""
    from pathlib import Path

    import matplotlib.figure
    import numpy as np

    from egeunet.benchmarks.plots import write_plots

    previous = b"\x89PNG previous run's complete plot"
    for name in ("latency_vs_size.png", "dice_per_format.png", "overlays.png"):
        (tmp_path / name).write_bytes(previous)
    real_savefig = matplotlib.figure.Figure.savefig

    def interrupted(self, fname, **kw):
        if self.axes[0].get_title().endswith("test images"):  # dice_per_format's figure
            if hasattr(fname, "write"):
                fname.write(b"\x89PNG\r\n\x1a\n")  # the first bytes, then the interrupt
            else:
                Path(fname).write_bytes(b"\x89PNG\r\n\x1a\n")
            raise KeyboardInterrupt
        return real_savefig(self, fname, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupted)
    report = _report([_row("tflite", "fp32", p50=5.0)])
    with pytest.raises(KeyboardInterrupt):
        write_plots(report, tmp_path, np.zeros((2, 8, 8, 3), np.uint8), {"truth": [np.zeros((8, 8), bool)] * 2})
    assert (tmp_path / "dice_per_format.png").read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dice_per_format.png", "latency_vs_size.png", "overlays.png"]


def test_two_files_of_one_format_are_told_apart_in_the_table():
    """exports/tflite-int8 beside a copy kept as exports/tflite-int8-old: two rows read
    "| tflite | int8 |" with different figures, and nothing said which file each one was."""
    from egeunet.benchmarks.bench import markdown

    report = _report([_row("tflite", "int8", p50=5.0, path="exports/tflite-int8/egeunet_int8.tflite"),
                      _row("tflite", "int8", p50=7.0, path="exports/tflite-int8-old/egeunet_int8.tflite"),
                      _row("tflite", "fp32", p50=9.0, path="exports/tflite-fp32/egeunet_fp32.tflite")])
    cells = [_cells(line)[:2] for line in markdown(report).splitlines()[2:5]]
    assert cells == [["tflite (tflite-int8)", "int8"], ["tflite (tflite-int8-old)", "int8"], ["tflite", "fp32"]]


def test_json_and_md_at_one_path_are_refused(isic_root, tmp_path, capsys, monkeypatch):
    """--json r.out --md ./r.out: the Markdown was written over the JSON report, exit 0."""
    from egeunet.cli import bench_main

    monkeypatch.chdir(tmp_path)
    err = refusal(bench_main, ["--quick", "--data", str(isic_root), "--formats", "torch", "--threads", "1",
                               "--json", "r.out", "--md", "./r.out"], capsys)
    assert "--json r.out and --md ./r.out are the same file" in err, err


@pytest.mark.parametrize("args, unused", [
    (["--device-images", "8"], "--device-images"),
    (["--ssh-arg=-i", "--ssh-arg=/k"], "--ssh-arg"),
    (["--remote-python", "python3.11", "--emulate", "cortex-a76"], "--remote-python"),  # emulation has no remote
])
def test_device_options_without_their_device_are_refused(args, unused, tmp_path, capsys, monkeypatch):
    """They were silently ignored: the run measured this machine only, as if the option did nothing."""
    from egeunet.benchmarks import bench
    from egeunet.cli import bench_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "run", lambda *a, **kw: pytest.fail("measured before refusing"))
    err = refusal(bench_main, ["--formats", "tflite", *args], capsys)
    assert f"{unused}: no device to use it on" in err, err


def test_a_manifest_without_its_file_is_a_failed_row_or_exported_again(isic_root, tmp_path, monkeypatch):
    """exports/tflite-int8/ with its manifest but no .tflite (deleted, a copy of the folder that
    missed it) stopped the whole run with "[Errno 2] No such file or directory". With --no-export
    it is a failed row naming the file; otherwise the variant is exported again."""
    from egeunet.benchmarks import bench

    exports = tmp_path / "exports"
    (exports / "tflite-int8").mkdir(parents=True)
    (exports / "tflite-int8" / "manifest.json").write_text(json.dumps(
        {"file": "egeunet_int8.tflite", "target": "tflite", "precision": "int8", "io": {}, "preprocessing": {}}))
    assert not bench._exported(exports / "tflite-int8")
    report = bench.run(exports, str(isic_root), (1,), True, ["tflite-int8"], 0.9, None, make_missing=False)
    row = next(r for r in report["rows"] if r["format"] == "tflite")
    assert row["status"] == "failed" and "egeunet_int8.tflite is missing beside its manifest.json" in row["reason"]
    exported = []
    monkeypatch.setattr("egeunet.export.export", lambda *a, **kw: exported.append(kw["out"]))
    assert bench.ensure_exports(exports, ["tflite-int8"], None) == {} and exported == [exports / "tflite-int8"]


def test_device_rows_get_only_files_the_host_rows_could_measure(isic_root, tmp_path, monkeypatch):
    """Emulated / SSH / adb rows took every .tflite under --exports: one made from other weights
    was scored against this model's PyTorch masks (its host row said failed), a missing one
    stopped the run. Neither is sent to a device now."""
    from egeunet.benchmarks import bench, devices

    exports = tmp_path / "exports"
    for key, sha in (("tflite-int8", "0" * 64), ("tflite-fp32", None)):
        (exports / key).mkdir(parents=True)
        man = {"file": f"egeunet_{key[7:]}.tflite", "target": "tflite", "precision": key[7:], "io": {},
               "preprocessing": {}, **({"weights_sha256": sha} if sha else {})}
        (exports / key / "manifest.json").write_text(json.dumps(man))
    (exports / "tflite-int8" / "egeunet_int8.tflite").write_bytes(b"another model's file")  # fp32: none
    sent = []
    monkeypatch.setattr(devices, "validate", lambda *a, **kw: None)
    monkeypatch.setattr(devices, "device_rows", lambda tflites, *a, **kw: sent.extend(tflites) or [])
    report = bench.run(exports, str(isic_root), (1,), True, ["tflite"], 0.9, None, make_missing=False,
                       emulate=("cortex-a76",))
    assert sorted(r["status"] for r in report["rows"] if r["format"] == "tflite") == ["failed", "failed"]
    assert sent == []


def test_two_files_of_one_format_each_get_an_overlay_row(tflite_exports, isic_root, tmp_path, monkeypatch):
    """The overlay grid keyed its rows by format and precision: a second fp32 .tflite (a copy
    kept in tflite-fp32-old/) replaced the first one's masks, and one file had no row."""
    import shutil

    from egeunet.benchmarks import bench, plots

    r, out = tflite_exports["fp32"]
    assert r.returncode == 0, r.stderr
    for name in ("tflite-fp32", "tflite-fp32-old"):
        shutil.copytree(out, tmp_path / "exports" / name)
    drawn = {}
    monkeypatch.setattr(plots, "write_plots", lambda report, folder, images, masks: drawn.update(masks) or [])
    bench.run(tmp_path / "exports", str(isic_root), (1,), True, ["tflite-fp32"], 0.9, str(tmp_path / "plots"),
              make_missing=False)
    assert sorted(drawn) == ["tflite-fp32", "tflite-fp32 (tflite-fp32-old)", "truth"]
