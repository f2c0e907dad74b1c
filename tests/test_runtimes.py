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
