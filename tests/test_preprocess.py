import numpy as np
import pytest
import torch
from PIL import Image

from egeunet.evaluate import images_to_tensor
from egeunet.preprocess import (
    ImageReadError,
    Preprocessing,
    normalize,
    probabilities_to_mask,
    read_image,
    resize_image,
    to_model_input,
)

PRE = Preprocessing(size=256, mean=(180.0, 150.0, 140.0), std=(40.0, 45.0, 50.0))


def _photo(h=60, w=90):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_grayscale_rgba_and_16bit_png_become_rgb_uint8(tmp_path):
    grey = np.arange(60 * 90, dtype=np.uint16).reshape(60, 90) % 256
    Image.fromarray(grey.astype(np.uint8), "L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (60, 90, 3) and out.dtype == np.uint8
    assert (out[..., 0] == grey).all() and (out[..., 2] == grey).all()

    rgba = np.dstack([_photo(), np.full((60, 90), 255, np.uint8)])
    rgba[:10, :, 3] = 0  # transparent rows composite onto black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (60, 90, 3)
    assert (out[:10] == 0).all() and (out[10:] == rgba[10:, :, :3]).all()

    deep = (np.linspace(0, 65535, 60 * 90).reshape(60, 90)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d16.png")
    with Image.open(tmp_path / "d16.png") as im:
        assert im.mode.startswith("I")
    out = read_image(tmp_path / "d16.png")
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() == 0  # scaled, not clipped


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(_photo(40, 100))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "r.jpg").shape == (100, 40, 3)


def test_unreadable_file_raises_one_line_error_naming_it(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_model_input_is_resized_and_normalised_nchw():
    img = _photo(300, 500)
    x = to_model_input(img, PRE)
    assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
    resized = np.asarray(Image.fromarray(img).resize((256, 256), Image.BILINEAR))
    np.testing.assert_allclose(x[0, 1], (resized[..., 1].astype(np.float32) - 150.0) / 45.0, rtol=1e-6, atol=1e-6)


def test_torch_normalisation_twin_matches_numpy_contract():
    img = resize_image(_photo(256, 256), 256)
    ref = normalize(img, PRE).transpose(2, 0, 1)
    got = images_to_tensor(torch.from_numpy(img[None]), PRE)[0].numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_mask_goes_back_to_original_size_with_bilinear_then_threshold():
    prob = np.zeros((256, 256), np.float32)
    prob[64:192, 64:192] = 1.0
    mask = probabilities_to_mask(prob, (480, 640), PRE)
    assert mask.shape == (480, 640) and mask.dtype == bool
    # the square covers the middle half of each axis
    assert mask[240, 320] and not mask[10, 10]
    frac = mask.mean()
    assert abs(frac - 0.25) < 0.01


def test_preprocessing_round_trips_through_dict_and_validates():
    assert Preprocessing.from_dict(PRE.to_dict()) == PRE
    with pytest.raises(ValueError, match="std must be positive"):
        Preprocessing(std=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="threshold"):
        Preprocessing(threshold=1.0)
    for size in (0, -8, 255, 16):  # the network halves its input five times
        with pytest.raises(ValueError, match=f"size must be a positive multiple of 32 .*got {size}"):
            Preprocessing(size=size)


def test_nan_or_infinite_normalisation_is_refused():
    """std NaN passed the std > 0 check: every output was NaN and every mask empty."""
    for mean, std in (((0.0, 0.0, 0.0), (1.0, float("nan"), 1.0)), ((float("inf"), 0.0, 0.0), (1.0, 1.0, 1.0))):
        with pytest.raises(ValueError, match="finite"):
            Preprocessing(mean=mean, std=std)


def test_threshold_on_logits_is_the_logit_of_the_probability_threshold():
    from egeunet.preprocess import sigmoid

    assert Preprocessing().threshold_on("logits") == 0.0
    pre = Preprocessing(threshold=0.7)
    t = pre.threshold_on("logits")
    assert t == pytest.approx(np.log(0.7 / 0.3)) and float(sigmoid(np.float32(t))) == pytest.approx(0.7)
    assert pre.threshold_on("probs") == 0.7
    with pytest.raises(ValueError, match="'logits' or 'probs'"):
        pre.threshold_on("prob")
