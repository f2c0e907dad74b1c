import numpy as np
import pytest

from egeunet.runtimes import open_runtime


def test_torch_runtime_predicts_a_mask_at_the_image_size(isic_root):
    from egeunet.preprocess import read_image

    img = read_image(sorted((isic_root / "images").glob("*.jpg"))[0])
    big = np.repeat(np.repeat(img, 2, axis=0), 3, axis=1)  # 512x768, another aspect ratio
    rt = open_runtime()
    prob = rt.predict(big)
    assert prob.shape == (256, 256) and 0.0 <= prob.min() and prob.max() <= 1.0
    mask = rt.predict_mask(big)
    assert mask.shape == (512, 768) and mask.dtype == bool and mask.any()


def test_open_runtime_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no such model file"):
        open_runtime(tmp_path / "m.tflite")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model type '.bin'"):
        open_runtime(tmp_path / "m.bin")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="no manifest.json"):
        open_runtime(tmp_path / "m.onnx")
    (tmp_path / "d.tflite").mkdir()
    with pytest.raises(ValueError, match="d.tflite: a folder, not a model file"):
        open_runtime(tmp_path / "d.tflite")


def _onnx_with_manifest(folder, manifest_text):
    (folder / "egeunet_fp32.onnx").write_bytes(b"x")
    (folder / "manifest.json").write_bytes(manifest_text if isinstance(manifest_text, bytes) else manifest_text.encode())
    return folder / "egeunet_fp32.onnx"


@pytest.mark.parametrize("manifest, message", [
    ("{}", "manifest.json: not a complete manifest .no 'file', 'target', 'precision', 'io', 'preprocessing' entry"),
    ("[1]", "manifest.json: not a manifest .a JSON list, expected an object"),
    ("not json", "manifest.json: not valid JSON"),
    (b"\xff\xfe\x00binary", "manifest.json: not valid JSON"),
])
def test_malformed_manifest_is_named(manifest, message, tmp_path):
    model = _onnx_with_manifest(tmp_path, manifest)
    with pytest.raises(ValueError, match=message):
        open_runtime(model)


def test_manifest_of_another_export_in_the_same_folder_is_refused(tmp_path):
    """A second export into the same --out replaced manifest.json: it must not be applied to
    the first export's file."""
    import json

    from egeunet.model.checkpoint import PRETRAINED, sidecar_path

    sidecar = json.loads(sidecar_path(PRETRAINED).read_text())
    man = {"file": "egeunet_int8.tflite", "target": "tflite", "precision": "int8",
           "preprocessing": sidecar["preprocessing"],
           "io": {"input": {"name": "x", "shape": [1, 256, 256, 3], "dtype": "float32", "layout": "NHWC",
                            "values": "normalized"},
                  "output": {"name": "y", "shape": [1, 256, 256, 1], "dtype": "float32", "kind": "logits"}}}
    model = _onnx_with_manifest(tmp_path, json.dumps(man))
    with pytest.raises(ValueError, match="manifest.json describes 'egeunet_int8.tflite', not egeunet_fp32.onnx"):
        open_runtime(model)
    man["file"], man["io"] = "egeunet_fp32.onnx", {"input": {}}  # right file, broken io entry
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="egeunet_fp32.onnx: bad 'preprocessing' or 'io' entry"):
        open_runtime(model)


def test_thread_count_below_one_is_refused():
    with pytest.raises(ValueError, match="threads must be >= 1, not -1"):
        open_runtime(threads=-1)


def test_a_renamed_copy_beside_its_manifest_still_opens(tflite_exports, tmp_path, isic_root):
    """The manifest names the exported file; a renamed copy is recognised by its sha256 (an app
    bundling 'model.tflite'), while other bytes under the manifest are refused."""
    import shutil

    from egeunet.preprocess import read_image

    r, out = tflite_exports["fp32"]
    assert r.returncode == 0, r.stderr[-2000:]
    shutil.copy(out / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(out / "egeunet_fp32.tflite", tmp_path / "model.tflite")
    img = read_image(sorted((isic_root / "images").glob("*.jpg"))[0])
    np.testing.assert_array_equal(open_runtime(tmp_path / "model.tflite").predict(img),
                                  open_runtime(out / "egeunet_fp32.tflite").predict(img))
    shutil.copy(tflite_exports["fp16"][1] / "egeunet_fp16.tflite", tmp_path / "other.tflite")
    with pytest.raises(ValueError, match="describes 'egeunet_fp32.tflite', not other.tflite"):
        open_runtime(tmp_path / "other.tflite")
