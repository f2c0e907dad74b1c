"""TFLite fp32 / fp16 / int8 from the shipped weights via the CLI, each checked for the
onnx2tf traps listed in egeunet/export/tflite_export.py."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx2tf", reason="TFLite export needs the export extra: pip install -e '.[export]'")

from egeunet.export.calibration import images_from_split  # noqa: E402
from egeunet.export.tflite_export import ONNX2TF_SAMPLE, write_onnx2tf_sample  # noqa: E402
from egeunet.runtimes import open_runtime  # noqa: E402


@pytest.mark.parametrize("precision, min_iou", [("fp32", 0.999), ("fp16", 0.998)])
def test_float_tflite_parity(tflite_exports, precision, min_iou):
    r, out = tflite_exports[precision]
    assert r.returncode == 0, r.stderr[-3000:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["precision"] == precision and (out / man["file"]).suffix == ".tflite"
    assert man["parity"]["n_images"] >= 32 and man["parity"]["iou"] >= min_iou, man["parity"]
    assert man["io"]["input"]["values"] == "pixels" and man["io"]["input"]["layout"] == "NHWC"
    assert "parity" in r.stdout and "bytes" in r.stdout  # the one-line summary


def test_int8_tflite_takes_uint8_pixels_and_reports_parity(tflite_exports):
    r, out = tflite_exports["int8"]
    assert r.returncode == 0, r.stderr[-3000:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["io"]["input"]["dtype"] == "uint8"
    assert man["parity"]["iou"] is not None and 0.0 < man["parity"]["iou"] <= 1.0
    assert man["calibration"]["n_images"] == 100 and "train split" in man["calibration"]["images"]
    q = man["io"]["input"]["quantization"]
    assert q is not None and abs(q["scale"] - 1.0) < 0.02 and abs(q["zero_point"]) <= 1  # raw pixels


def test_no_flex_ops_and_runtime_agrees_with_manifest(tflite_exports, isic_root):
    imgs = images_from_split(isic_root, "test", 3, 256)
    torch_rt = open_runtime()
    for precision, (r, out) in tflite_exports.items():
        assert r.returncode == 0, r.stderr[-2000:]
        man = json.loads((out / "manifest.json").read_text())
        ops = man["graph"]["tflite_ops"]
        assert ops and not [o for o in ops if "FLEX" in o.upper() or "CUSTOM" in o.upper()], ops
        rt = open_runtime(out / man["file"])  # LiteRT without the Flex delegate
        for img in imgs:
            agree = (rt.predict(img) >= 0.5) == (torch_rt.predict(img) >= 0.5)
            assert agree.mean() > (0.99 if precision != "int8" else 0.9)


def test_onnx2tf_sample_file_is_provided_locally(tmp_path):
    path = write_onnx2tf_sample(tmp_path)
    assert path.name == ONNX2TF_SAMPLE
    arr = np.load(path)
    assert arr.shape == (20, 128, 128, 3) and arr.dtype == np.float32
    assert 0.0 <= arr.min() and arr.max() <= 1.0


def test_predict_cli_runs_the_int8_tflite(tflite_exports, isic_root, tmp_path):
    r, out = tflite_exports["int8"]
    assert r.returncode == 0, r.stderr[-2000:]
    model = next(out.glob("*.tflite"))
    img = sorted((isic_root / "images").glob("*.jpg"))[1]
    p = subprocess.run([sys.executable, "-m", "egeunet", "predict", str(img), "--model", str(model), "--out", "o"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "o" / f"{img.stem}_mask.png").exists() and "lesion" in p.stdout
