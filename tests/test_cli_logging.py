"""What the console scripts print: our own progress lines, not other libraries' INFO logs."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import logging
from egeunet.cli import _user_errors

@_user_errors
def main(argv=None):
    logging.getLogger("coremltools").info("Removing op x (type: const)")
    logging.getLogger("coremltools").warning("a library warning")
    logging.getLogger("egeunet.export.api").info("[verify] our progress line")
    return 0

raise SystemExit(main([]))
"""


def test_console_scripts_show_our_info_lines_and_only_warnings_of_other_libraries():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "[verify] our progress line" in r.stderr
    assert "a library warning" in r.stderr
    assert "Removing op" not in r.stderr


def test_coreml_export_does_not_print_every_converted_op(tmp_path):
    pytest.importorskip("coremltools", reason="Core ML export needs the export extra: pip install -e '.[export]'")
    r = subprocess.run([sys.executable, "-m", "egeunet", "export", "--target", "coreml", "--num-verify", "2",
                        "--out", str(tmp_path / "cm")], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "manifest:" in r.stdout
    out = r.stdout + r.stderr
    assert "Removing op" not in out and "Converting op" not in out, out[-2000:]


NATIVE = """
import os, sys
from egeunet.native_logs import quiet_native_logs

print("before", file=sys.stderr, flush=True)
with quiet_native_logs():
    os.write(2, b"E0000 00:00:1795715239.970496    8586 cuda_dnn.cc:8579] Unable to register cuDNN factory: "
                b"Attempting to register factory for plugin cuDNN when one has already been registered\\n")
    os.write(2, b"E0000 00:00:1795715239.970512    8586 graph.cc:12] a real native error\\n")
    print("a Python warning inside", file=sys.stderr)
try:
    with quiet_native_logs():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        os.write(2, b"native line before a failure\\n")
        raise RuntimeError("boom")
except RuntimeError:
    print("after", file=sys.stderr)
"""


def test_known_native_startup_lines_are_dropped_and_every_other_line_kept_in_order():
    r = subprocess.run([sys.executable, "-c", NATIVE], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "before", "E0000 00:00:1795715239.970512    8586 graph.cc:12] a real native error",
        "a Python warning inside", "native line before a failure", "after"]
    r = subprocess.run([sys.executable, "-c", NATIVE], capture_output=True, text=True,
                       env={**os.environ, "EGEUNET_NATIVE_LOGS": "all"})
    assert "Unable to register cuDNN factory" in r.stderr and "XNNPACK delegate" in r.stderr


def test_tflite_export_and_predict_print_no_tensorflow_startup_lines(tflite_exports, tmp_path):
    """TensorFlow 2.19 prints 'E0000 ... Unable to register cuDNN factory' and a dozen more C++
    lines on import, which TF_CPP_MIN_LOG_LEVEL cannot silence: the headline command showed
    fourteen of them, 'E' lines among them, above its result. Checked on the session's exports
    (every TFLite precision, the headline int8 among them)."""
    from PIL import Image

    for precision, (r, _) in tflite_exports.items():
        assert r.returncode == 0, (precision, r.stderr[-2000:])
        assert "manifest:" in r.stdout
        for noise in ("0000 00:00:", "Unable to register", "absl::InitializeLog", "XNNPACK delegate"):
            assert noise not in r.stderr, (precision, r.stderr[-2000:])
    Image.new("RGB", (300, 200), (180, 120, 100)).save(tmp_path / "photo.png")
    r = subprocess.run([sys.executable, "-m", "egeunet", "predict", "photo.png", "--model",
                        str(tflite_exports["int8"][1] / "egeunet_int8.tflite"), "--out", "o"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "lesion" in r.stdout + r.stderr and "XNNPACK delegate" not in r.stderr, r.stderr[-2000:]
