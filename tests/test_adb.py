"""The adb route: command construction and parsing of real LiteRT ``benchmark_model`` output.

No phone is attached to these machines, so the device calls themselves are not run here; the
samples below are verbatim logs published by users of the tool (sources on each)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from egeunet.benchmarks.adb import (CPU_FREQS_CMD, Adb, benchmark_command, big_core_mask, parse_benchmark_output,
                                    parse_cpu_freqs)

# Current format (android_aarch64_benchmark_model, LiteRT nightly): INFO: prefixes, percentiles,
# %g averages. From a public run log of tiny_muaalem_float32.tflite on a phone.
NEW_FORMAT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [1000]
INFO: Min warmup runs: [5]
INFO: Graph: [./models/tiny_muaalem_float32.tflite]
INFO: Signature to run: []
INFO: Loaded model ./models/tiny_muaalem_float32.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 2168 out of 2168 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 24.6229
INFO: Initialized session in 119.515ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112

INFO: Running benchmark for at least 1000 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628

INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
"""

# The same tool failing on an int8 file (same log): no timings, ERROR lines instead.
FAILED = """\
INFO: Loaded model ./models/tiny_muaalem_int8.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 2136 out of 2168 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 65 partitions for subgraph 0.
ERROR: tensorflow/lite/kernels/batch_matmul.cc:353 (lhs_data->type == kTfLiteFloat32 && rhs_data->type == kTfLiteInt8) || lhs_data->type == rhs_data->type was not true.
ERROR: Node number 57 (BATCH_MATMUL) failed to prepare.
ERROR: Failed to allocate tensors!
ERROR: Benchmarking failed.
"""

# Older format (no prefixes, no percentiles): `adb shell taskset f0 /data/local/tmp/benchmark_model
# --graph=albert_base.tflite --num_threads=1` (gist.github.com/Rexhaif/a73d899a8ae837f9a3b4cbdd5653d71d).
OLD_FORMAT = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [1]
Graph: [/data/local/tmp/albert_base.tflite]
#threads used for CPU inference: [1]
Loaded model /data/local/tmp/albert_base.tflite
INFO: Initialized TensorFlow Lite runtime.
The input model file size (MB): 11.983
Initialized session in 20.283ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=2 first=339304 curr=266325 min=266325 max=339304 avg=302814 std=36489
Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=266601 curr=266931 min=265837 max=268116 avg=266473 std=419
Inference timings in us: Init: 20283, First inference: 339304, Warmup (avg): 302814, Inference (avg): 266473
"""

# Older format with averages in %g notation and a one-run warm-up line (mobilenet_v1 on a board).
SCIENTIFIC = """\
Initialized session in 17.187ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=3512391

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798

Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859
"""


def test_parse_current_format_takes_the_timed_runs_not_the_warmup():
    r = parse_benchmark_output(NEW_FORMAT)
    assert r["runs"] == 1000
    assert r["avg"] == pytest.approx(63.7432) and r["p50"] == pytest.approx(51.891)
    assert (r["p5"], r["p95"], r["min"], r["max"]) == pytest.approx((49.620, 68.628, 49.088, 686.105))
    assert r["std"] == pytest.approx(60.716)
    assert (r["init_ms"], r["first_ms"], r["warmup_avg_ms"]) == pytest.approx((119.515, 87.112, 58.1474))
    assert r["memory_mb"] == {"init": 55.4961, "overall": 55.4961}


def test_parse_older_formats():
    old = parse_benchmark_output(OLD_FORMAT)
    assert old["runs"] == 50 and old["avg"] == pytest.approx(266.473) and old["std"] == pytest.approx(0.419)
    assert "p50" not in old and "memory_mb" not in old  # this build prints no median: never invent one
    sci = parse_benchmark_output(SCIENTIFIC)
    assert sci["avg"] == pytest.approx(2950.34) and sci["warmup_avg_ms"] == pytest.approx(3512.39)
    assert sci["runs"] == 50 and sci["min"] == pytest.approx(2727.568)
    assert sci["memory_mb"]["overall"] == pytest.approx(46.0859)


def test_a_failed_run_raises_with_the_tools_own_error():
    with pytest.raises(RuntimeError, match=r"no timings: tensorflow/lite/kernels/batch_matmul.cc:353"):
        parse_benchmark_output(FAILED)
    with pytest.raises(RuntimeError, match="no output"):
        parse_benchmark_output("")


def test_big_cores_from_cpufreq():
    # What CPU_FREQS_CMD prints on a 1+3+4 phone (little 1.8 GHz, big 2.4, prime 2.84).
    text = "".join(f"/sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq {f}\n"
                   for i, f in enumerate([1804800] * 4 + [2419200] * 3 + [2841600]))
    freqs = parse_cpu_freqs(text)
    assert len(freqs) == 8 and freqs[7] == 2841600
    assert big_core_mask(freqs) == "f0"
    assert big_core_mask({0: 1500000, 1: 1500000, 2: 1500000, 3: 1500000}) == "f"  # all alike: all cores
    assert big_core_mask(parse_cpu_freqs(text.replace("cpu5/", "cpu9/"))) == "2d0"
    with pytest.raises(RuntimeError, match="cpuinfo_max_freq"):
        big_core_mask(parse_cpu_freqs("cat: /sys/devices/system/cpu/cpu0/cpufreq: Permission denied\n"))
    assert "cpuinfo_max_freq" in CPU_FREQS_CMD


def test_adb_and_benchmark_command_lines():
    dev = Adb("R58M123ABC")
    assert dev.push("exports/tflite-int8/egeunet_int8.tflite", "/data/local/tmp/egeunet/egeunet_int8.tflite") == [
        "adb", "-s", "R58M123ABC", "push", "exports/tflite-int8/egeunet_int8.tflite",
        "/data/local/tmp/egeunet/egeunet_int8.tflite"]
    assert Adb().shell("getprop ro.product.model") == ["adb", "shell", "getprop ro.product.model"]
    cmd = benchmark_command("/data/local/tmp/egeunet/benchmark_model", "/data/local/tmp/egeunet/m.tflite", 4,
                            "f0", 10, 50)
    assert cmd == ("taskset f0 /data/local/tmp/egeunet/benchmark_model --graph=/data/local/tmp/egeunet/m.tflite "
                   "--num_threads=4 --warmup_runs=10 --num_runs=50 --use_xnnpack=true")


@pytest.mark.parametrize("args, message", [
    (["--adb"], "--adb needs --benchmark-model"),
    (["--adb", "--benchmark-model", "/nonexistent/benchmark_model"], "no such file"),
    (["--benchmark-model", __file__], "add --adb"),
])
def test_bench_rejects_bad_adb_arguments_in_one_line(args, message, tmp_path):
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--exports", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# A fake `adb` (a shell script) stands in for the platform tools: what it answers is what real adb
# prints in each situation (`adb devices` states; benchmark_model's timings on stdout and its ERROR
# lines on stderr, exit status passed through by `adb shell`).
FAKE_ADB = r"""#!/bin/bash
[ "$1" = "-s" ] && shift 2
case "$1" in
  devices) printf 'List of devices attached\n%b\n' "$FAKE_DEVICES"; exit 0;;
  wait-for-device) [ -n "$FAKE_HANG" ] && exec sleep 30; exit 0;;
  push) exit 0;;
  shell) ;;
  *) echo "fake adb: $*" >&2; exit 1;;
esac
case "$2" in
  "getprop ro.product.model") echo "Pixel Fake";;
  "getprop ro.product.cpu.abi") echo "arm64-v8a";;
  for*) [ -n "$FAKE_NO_CPUFREQ" ] && { echo "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq "; exit 0; }
        for i in 0 1 2 3; do echo "/sys/devices/system/cpu/cpu$i/cpufreq/cpuinfo_max_freq 1804800"; done
        for i in 4 5 6 7; do echo "/sys/devices/system/cpu/cpu$i/cpufreq/cpuinfo_max_freq 2419200"; done;;
  mkdir*|chmod*) ;;
  taskset*) [ -n "$FAKE_NO_CPUFREQ" ] && { echo "taskset used without a mask" >&2; exit 1; } ;;&
  *broken*) echo "INFO: Loaded model"
                   echo "ERROR: Node number 57 (BATCH_MATMUL) failed to prepare." >&2
                   echo "ERROR: Benchmarking failed." >&2; exit 1;;
  *benchmark_model*) echo "INFO: count=50 first=52162 curr=49785 min=49088 max=68610 avg=53743.2 std=6071 p5=49620 median=51891 p95=68628"
            echo "INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 53743.2";;
  *) echo "fake adb shell: $2" >&2; exit 1;;
esac
"""


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """A folder on PATH holding a fake `adb`; FAKE_DEVICES says what `adb devices` lists."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "adb").write_text(FAKE_ADB)
    (bin_dir / "adb").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_DEVICES", "R58M123ABC\\tdevice")
    return bin_dir


@pytest.mark.parametrize("devices, serial, message", [
    ("", None, "no Android device attached"),
    ("R58M123ABC\\tunauthorized", None, "R58M123ABC is unauthorized: unlock the phone and accept"),
    ("R58M123ABC\\toffline", "R58M123ABC", "R58M123ABC is offline"),
    ("R58M123ABC\\tdevice", "OTHER1", "no device OTHER1 attached (`adb devices` lists R58M123ABC (device))"),
    ("A1\\tdevice\\nB2\\tdevice", None, "several devices attached (A1 (device), B2 (device)): name one"),
])
def test_a_phone_that_is_not_ready_is_named_not_waited_for(fake_adb, monkeypatch, devices, serial, message):
    monkeypatch.setenv("FAKE_DEVICES", devices)
    with pytest.raises(RuntimeError, match=re.escape(message)):
        Adb(serial).check_attached()
    monkeypatch.setenv("FAKE_DEVICES", "R58M123ABC\\tdevice")
    assert Adb().check_attached() == "R58M123ABC"


def test_an_adb_call_that_hangs_is_an_error(fake_adb, monkeypatch):
    """`adb wait-for-device` with no phone never returns: a RuntimeError, not TimeoutExpired."""
    monkeypatch.setenv("FAKE_HANG", "1")
    with pytest.raises(RuntimeError, match="did not finish within 1 s"):
        Adb().call(["adb", "wait-for-device"], timeout=1)
    with pytest.raises(RuntimeError, match="nonexistent-adb not found: install the Android platform tools"):
        Adb(adb="nonexistent-adb").check_attached()


def test_a_file_that_fails_on_the_phone_fails_only_its_own_row(fake_adb, tmp_path):
    from egeunet.benchmarks.adb import measure

    models = [tmp_path / "broken_fp32.tflite", tmp_path / "egeunet_int8.tflite"]
    for m in models:
        m.write_bytes(b"x")
    (tmp_path / "benchmark_model").write_bytes(b"x")
    res = measure(models, tmp_path / "benchmark_model", threads=(1, 4), warmup=1, runs=5)
    assert res["mask"] == "f0" and res["device"] == "adb Pixel Fake (arm64-v8a)"
    assert set(res["results"]) == {"egeunet_int8.tflite"} and set(res["results"]["egeunet_int8.tflite"]) == {"1", "4"}
    assert res["results"]["egeunet_int8.tflite"]["4"]["p50"] == pytest.approx(51.891)
    # the tool's own first ERROR line (on stderr), not its closing "Benchmarking failed."
    assert res["errors"] == {"broken_fp32.tflite": "benchmark_model reported no timings: "
                                                   "Node number 57 (BATCH_MATMUL) failed to prepare."}


@pytest.mark.parametrize("devices, path, message", [
    ("", True, "error: adb: no Android device attached"),
    ("R58M123ABC\\tdevice", False, "error: adb not found: install the Android platform tools"),
])
def test_bench_names_a_missing_phone_or_adb_before_measuring(fake_adb, tmp_path, devices, path, message):
    """One line, exit 2, before the test split is read (--data points nowhere: reading it would
    be the next step)."""
    import os

    env = dict(os.environ, FAKE_DEVICES=devices, PATH=os.environ["PATH"] if path else str(tmp_path / "empty"))
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--exports", str(tmp_path), "--data",
                        str(tmp_path / "no-data"), "--adb", "--benchmark-model", __file__],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stderr.startswith(message) and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_phone_that_hides_cpufreq_is_measured_unpinned(fake_adb, monkeypatch, tmp_path):
    """The error used to say "pass the cores yourself", which no option allows: run without taskset."""
    from egeunet.benchmarks.adb import measure

    monkeypatch.setenv("FAKE_NO_CPUFREQ", "1")
    (tmp_path / "m.tflite").write_bytes(b"x")
    (tmp_path / "benchmark_model").write_bytes(b"x")
    res = measure([tmp_path / "m.tflite"], tmp_path / "benchmark_model", threads=(2,), warmup=1, runs=5)
    assert res["mask"] is None and res["errors"] == {} and res["results"]["m.tflite"]["2"]["runs"] == 50
    assert benchmark_command("/d/bm", "/d/m.tflite", 2, None, 1, 5).startswith("/d/bm --graph=/d/m.tflite")


def test_more_threads_than_big_cores_is_warned(fake_adb, tmp_path, caplog):
    """The fake phone has 4 big cores (mask f0): 8 threads pinned there time the scheduler."""
    from egeunet.benchmarks.adb import measure

    (tmp_path / "m.tflite").write_bytes(b"x")
    (tmp_path / "benchmark_model").write_bytes(b"x")
    with caplog.at_level("WARNING", logger="egeunet.benchmarks.adb"):
        measure([tmp_path / "m.tflite"], tmp_path / "benchmark_model", threads=(4,), warmup=1, runs=5)
    assert "oversubscribed" not in caplog.text
    with caplog.at_level("WARNING", logger="egeunet.benchmarks.adb"):
        measure([tmp_path / "m.tflite"], tmp_path / "benchmark_model", threads=(1, 8), warmup=1, runs=5)
    assert "4 big core(s) (mask f0): --threads 8 runs oversubscribed" in caplog.text
