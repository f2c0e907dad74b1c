import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import exit_code, png_header_only, refusal


def _predict(args, cwd):
    return subprocess.run([sys.executable, "-m", "egeunet", "predict", *args], capture_output=True, text=True, cwd=cwd)


def test_predict_on_odd_sized_originals_gives_masks_at_their_size(kvasir_root, tmp_path):
    originals = sorted(p for p in (kvasir_root / "originals").glob("*.jpg") if not p.stem.endswith("_mask"))
    assert len(originals) == 12
    src = tmp_path / "in"
    src.mkdir()
    for p in originals:
        shutil.copy(p, src)
    r = _predict([str(src), "--out", "out"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "predict" in r.stderr and "img/s" in r.stderr  # progress bar for a folder
    for p in originals:
        with Image.open(p) as im:
            size = im.size
        with Image.open(tmp_path / "out" / f"{p.stem}_mask.png") as m:
            assert m.size == size and m.mode == "L"
            assert set(np.unique(np.asarray(m))) <= {0, 255}
        with Image.open(tmp_path / "out" / f"{p.stem}_overlay.png") as o:
            assert o.size == size and o.mode == "RGB"
    assert len(re.findall(r"lesion \d+\.\d% of \d+x\d+", r.stdout)) == 12


def test_predict_on_test_images_matches_ground_truth_reasonably(isic_root, tmp_path):
    from egeunet.data import SegmentationFolder

    ids = SegmentationFolder(isic_root).ids("test")[:5]
    r = _predict([str(isic_root / "images" / f"{i}.jpg") for i in ids] + ["--out", "o"], tmp_path)
    assert r.returncode == 0, r.stderr
    dices = []
    for i in ids:
        pred = np.asarray(Image.open(tmp_path / "o" / f"{i}_mask.png")) > 0
        truth = np.asarray(Image.open(isic_root / "masks" / f"{i}.png")) > 0
        dices.append(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
    assert np.mean(dices) > 0.7, dices


def test_unreadable_file_is_reported_skipped_and_exit_code_is_nonzero(isic_root, tmp_path):
    good = sorted((isic_root / "images").glob("*.jpg"))[0]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    r = _predict([str(good), str(bad), "--out", "o"], tmp_path)
    assert r.returncode == 1
    assert "broken.png" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "o" / f"{good.stem}_mask.png").exists()


def test_grayscale_rgba_and_16bit_inputs(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 70), dtype=np.uint8), "L").save(tmp_path / "g.png")
    Image.fromarray(rng.integers(0, 255, (90, 70, 4), dtype=np.uint8), "RGBA").save(tmp_path / "a.png")
    Image.fromarray((rng.random((90, 70)) * 65535).astype(np.uint16)).save(tmp_path / "d.png")
    r = _predict([str(tmp_path / n) for n in ("g.png", "a.png", "d.png")] + ["--out", "o"], tmp_path)
    assert r.returncode == 0, r.stderr
    for n in ("g", "a", "d"):
        with Image.open(tmp_path / "o" / f"{n}_mask.png") as m:
            assert m.size == (70, 90)


def test_images_with_the_same_stem_get_their_own_outputs(tmp_path, capsys, monkeypatch):
    from egeunet.cli import predict_main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for i, rel in enumerate(("coll/d1/x.png", "coll/d2/x.png", "coll/y.jpg", "coll/y.png")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)  # each its own size: masks are told apart
        Image.fromarray(rng.integers(0, 255, (40 + 3 * i, 30 + i, 3), dtype=np.uint8)).save(tmp_path / rel)
    assert exit_code(predict_main, ["coll", "--out", "o"]) == 0, capsys.readouterr().err
    for name, rel in (("d1/x", "coll/d1/x.png"), ("d2/x", "coll/d2/x.png"), ("y.jpg", "coll/y.jpg"),
                      ("y.png", "coll/y.png")):
        with Image.open(tmp_path / "o" / f"{name}_mask.png") as m, Image.open(tmp_path / rel) as src:
            assert m.size == src.size, name  # each image's own mask, none overwritten
        assert (tmp_path / "o" / f"{name}_overlay.png").is_file()


def test_outputs_that_would_still_clash_are_refused_before_writing(tmp_path, capsys, monkeypatch):
    from egeunet.cli import predict_main

    monkeypatch.chdir(tmp_path)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        Image.new("RGB", (20, 20)).save(tmp_path / d / "x.png")
    err = refusal(predict_main, ["a/x.png", "b/x.png", "--out", "o"], capsys)
    assert "a/x.png and b/x.png would both be written as x.png_mask.png" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("out, message", [
    ("afile", "--out afile: is a file, not a folder"),
    ("afile/sub", "--out afile/sub: afile is a file, not a folder"),
])
def test_out_that_cannot_be_a_folder_is_refused_up_front(out, message, tmp_path, capsys, monkeypatch):
    from egeunet.cli import predict_main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    Image.new("RGB", (20, 20)).save(tmp_path / "x.png")
    assert message in refusal(predict_main, ["x.png", "--out", out], capsys)


@pytest.mark.parametrize("threads, message", [("-1", "must be >= 1"), ("0", "must be >= 1"),
                                              ("100000", "100000 threads is more than 4x")])
def test_bad_thread_counts_are_refused(threads, message, tmp_path, capsys, monkeypatch):
    from egeunet.cli import predict_main

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (20, 20)).save(tmp_path / "x.png")
    assert f"--threads: {message}" in refusal(predict_main, ["x.png", "--threads", threads], capsys)


def test_decompression_bomb_is_skipped_like_an_unreadable_file(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    png_header_only(src / "bomb.png", 15000, 15000)
    Image.new("RGB", (30, 20), (200, 150, 140)).save(src / "ok.png")
    r = _predict([str(src), "--out", "o"], tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "skipped: " in r.stderr and "bomb.png: not a readable image (too large" in r.stderr
    assert (tmp_path / "o" / "ok_mask.png").is_file()


def test_images_above_the_pixel_limit_are_refused_from_their_header(tmp_path):
    """11000x11000 (121 MP): below Pillow's own error (~179 MP), above read_image's 100 MP."""
    from egeunet.preprocess import ImageReadError, read_image

    png_header_only(tmp_path / "big.png", 11000, 11000)
    with pytest.raises(ImageReadError, match="11000x11000 is 121 megapixels, more than the 100 allowed"):
        read_image(tmp_path / "big.png")


def test_large_but_legal_image_gives_no_pillow_warning(tmp_path):
    """9500x9500 is above Pillow's warning threshold (~89 MP) but within read_image's limit:
    no raw DecompressionBombWarning (the header-only file then fails as unreadable)."""
    import warnings

    from egeunet.preprocess import ImageReadError, read_image

    path = tmp_path / "big.png"
    png_header_only(path, 9500, 9500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageReadError, match="big.png: not a readable image") as e:
            read_image(path)
    assert "too large" not in str(e.value)


def test_library_functions_take_str_paths_and_folders(tmp_path):
    """predict_file / predict_many with str paths (they raised AttributeError / TypeError), and
    predict_many with a folder in its list predicts the folder's images (it reported the
    folder itself as an unreadable image)."""
    from egeunet.predict import predict_file, predict_many
    from egeunet.runtimes import open_runtime

    src = tmp_path / "in" / "sub"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(src / name)
    rt = open_runtime()
    p = predict_file(rt, str(src / "a.png"), str(tmp_path / "o1"))
    assert p.mask_path == tmp_path / "o1" / "a_mask.png" and p.mask_path.is_file() and p.size == (60, 40)
    results = dict(predict_many(rt, [str(tmp_path / "in")], str(tmp_path / "o2"), progress=False))
    assert sorted(results) == [src / "a.png", src / "b.jpg"]
    assert all(not isinstance(r, str) for r in results.values()), results
    assert (tmp_path / "o2" / "sub" / "b_mask.png").is_file()
    results = dict(predict_many(rt, [str(src / "b.jpg")], tmp_path / "o3", progress=False))
    assert not isinstance(results[src / "b.jpg"], str) and (tmp_path / "o3" / "b_mask.png").is_file()


def test_rerun_with_out_inside_the_input_folder_does_not_predict_earlier_outputs(tmp_path, capsys, monkeypatch):
    """`egeunet-predict .` run twice: the second run took the first run's masks and overlays
    in predictions/ for photos (predictions/predictions/x_mask_mask.png ...), one level more
    on every re-run."""
    from egeunet.cli import predict_main

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (30, 20), (200, 150, 140)).save(tmp_path / "x.png")
    for _ in range(2):
        assert exit_code(predict_main, [".", "--out", "predictions"]) == 0, capsys.readouterr().err
    written = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "predictions").rglob("*"))
    assert written == ["predictions/x_mask.png", "predictions/x_overlay.png"]


def test_outputs_that_would_overwrite_an_input_image_are_refused_before_writing(tmp_path, capsys, monkeypatch):
    """With --out the input folder, x.png's mask x_mask.png replaced the user's own photo
    x_mask.png (which was then 'predicted': a mask of a mask)."""
    from egeunet.cli import predict_main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    Image.new("RGB", (30, 20), (200, 150, 140)).save(tmp_path / "d" / "x.png")
    Image.new("RGB", (50, 40), (90, 60, 50)).save(tmp_path / "d" / "x_mask.png")
    photo = (tmp_path / "d" / "x_mask.png").read_bytes()
    err = refusal(predict_main, ["d", "--out", "d"], capsys)
    assert "d/x_mask.png is an input image: the mask of d/x.png would be written over it" in err
    assert (tmp_path / "d" / "x_mask.png").read_bytes() == photo
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["x.png", "x_mask.png"]


@pytest.mark.parametrize("failure, code", [(OSError(28, "No space left on device"), 2), (KeyboardInterrupt(), 130)])
def test_a_write_cut_short_leaves_no_partial_outputs(failure, code, tmp_path, capsys, monkeypatch):
    """Disk full (or Ctrl-C) while writing the overlay left the image's mask without its overlay,
    a half-written temporary file, and (disk full) a raw traceback."""
    from egeunet.cli import predict_main

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (30, 20), (200, 150, 140)).save(tmp_path / "x.png")
    save = Image.Image.save

    def save_failing_on_the_overlay(im, fp, *args, **kwargs):
        if "overlay" in str(fp):
            with open(fp, "wb") as f:
                f.write(b"\x89PNG half")  # a part written, then the failure
            raise failure
        return save(im, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_failing_on_the_overlay)
    assert exit_code(predict_main, ["x.png", "--out", "o"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:
        assert "o/x_overlay.png: cannot write it (No space left on device)" in err
    assert [p.name for p in (tmp_path / "o").iterdir()] == []


def test_hidden_files_in_a_folder_are_not_taken_for_photos(tmp_path, capsys, monkeypatch):
    """A folder copied from a macOS drive holds ._x.png resource forks (not images): they were
    reported unreadable and the run exited 1. Hidden files and folders are skipped in folder
    scans; a hidden file named on the command line is still predicted."""
    from egeunet.cli import predict_main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d" / ".thumbs").mkdir(parents=True)
    Image.new("RGB", (30, 20), (200, 150, 140)).save(tmp_path / "d" / "x.png")
    (tmp_path / "d" / "._x.png").write_bytes(b"\x00\x05\x16\x07" + bytes(200))  # an AppleDouble header
    Image.new("RGB", (8, 8), (90, 60, 50)).save(tmp_path / "d" / ".thumbs" / "x.png")
    assert exit_code(predict_main, ["d", "--out", "o"]) == 0, capsys.readouterr().err
    written = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*"))
    assert written == ["x_mask.png", "x_overlay.png"]
    assert exit_code(predict_main, ["d/.thumbs/x.png", "--out", "o2"]) == 0, capsys.readouterr().err
    assert (tmp_path / "o2" / "x_mask.png").is_file()
