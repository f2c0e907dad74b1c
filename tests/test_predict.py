import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image


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
