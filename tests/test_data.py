import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from egeunet.data import DataError, SegmentationFolder, channel_stats, resolve_data_root

from conftest import png_header_only


def test_isic2018_splits_and_arrays(isic_root):
    folder = SegmentationFolder(isic_root)
    assert {k: len(v) for k, v in folder.splits.items()} == {"train": 1634, "val": 182, "test": 778}
    arr = folder.load_split("val", 256, limit=6)
    assert arr.images.shape == (6, 256, 256, 3) and arr.images.dtype == np.uint8
    assert arr.masks.shape == (6, 256, 256) and set(np.unique(arr.masks)) <= {0, 1}
    assert all(m.any() for m in arr.masks)  # the data README: no empty mask


def test_kvasir_reads_through_the_same_reader(kvasir_root):
    folder = SegmentationFolder(kvasir_root)
    assert {k: len(v) for k, v in folder.splits.items()} == {"train": 800, "val": 100, "test": 100}
    arr = folder.load_split("test", 128, limit=3)  # another size goes through the contract
    assert arr.images.shape == (3, 128, 128, 3)


def test_channel_stats_match_numpy():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    mean, std = channel_stats(imgs)
    np.testing.assert_allclose(mean, imgs.reshape(-1, 3).mean(0), atol=1e-3)
    np.testing.assert_allclose(std, imgs.reshape(-1, 3).std(0), atol=1e-3)


@pytest.fixture()
def small_copy(isic_root, tmp_path):
    """A writable three-image copy of real ISIC pairs, to break on purpose."""
    root = tmp_path / "isic"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ids = SegmentationFolder(isic_root).ids("train")[:3]
    for i in ids:
        shutil.copy(isic_root / "images" / f"{i}.jpg", root / "images")
        shutil.copy(isic_root / "masks" / f"{i}.png", root / "masks")
    (root / "splits.csv").write_text("id,split\n" + "".join(f"{i},train\n" for i in ids))
    return root, ids


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        SegmentationFolder(tmp_path / "nowhere")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="masks: missing folder"):
        SegmentationFolder(tmp_path)


def test_image_without_mask_is_named(small_copy):
    root, ids = small_copy
    (root / "masks" / f"{ids[1]}.png").unlink()
    with pytest.raises(DataError, match=f"no mask for image {ids[1]}.jpg"):
        SegmentationFolder(root).load_split("train")


def test_mask_of_another_size_is_named(small_copy):
    root, ids = small_copy
    Image.new("L", (100, 80)).save(root / "masks" / f"{ids[0]}.png")
    with pytest.raises(DataError, match=rf"{ids[0]}.png: mask is 100x80 but its image {ids[0]}.jpg is 256x256"):
        SegmentationFolder(root).load_split("train")


def test_a_dangling_link_the_splits_do_not_list_does_not_stop_the_fingerprint(small_copy):
    """A broken symlink left in images/ (not in splits.csv) stopped training after the data was
    decoded: the fingerprint's stat() raised FileNotFoundError. It is skipped; the fingerprint of
    the folder is what it was without it."""
    root, ids = small_copy
    before = SegmentationFolder(root).fingerprint()
    (root / "images" / "gone.jpg").symlink_to(root / "nowhere.jpg")
    assert SegmentationFolder(root).fingerprint() == before


def test_unreadable_image_is_named(small_copy):
    root, ids = small_copy
    (root / "images" / f"{ids[2]}.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=f"{ids[2]}.jpg: not a readable image"):
        SegmentationFolder(root).load_split("train")


def test_decompression_bomb_mask_is_named(small_copy):
    root, ids = small_copy
    png_header_only(root / "masks" / f"{ids[0]}.png", 15000, 15000)
    with pytest.raises(DataError, match=f"{ids[0]}.png: not a readable mask image .DecompressionBombError"):
        SegmentationFolder(root).load_split("train")


def test_an_id_listed_twice_in_splits_csv_is_refused(small_copy):
    """An image listed as train and again as val was trained on and also chose the best epoch."""
    root, ids = small_copy
    with open(root / "splits.csv", "a") as f:
        f.write(f"{ids[1]},val\n")
    with pytest.raises(DataError, match=rf"splits.csv:5: id '{ids[1]}' is listed again \(line 3 has it as train, "
                                        r"this line as val\)"):
        SegmentationFolder(root)


def test_unknown_split_lists_the_known_ones(small_copy):
    root, _ = small_copy
    with pytest.raises(DataError, match="no split 'test' .has: train"):
        SegmentationFolder(root).ids("test")


def test_env_var_and_flag_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("EGEUNET_DATA", str(tmp_path))
    assert resolve_data_root() == tmp_path
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_root(tmp_path / "missing")


def test_cli_reports_bad_data_in_one_line_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "egeunet", "eval", "--data", str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and "nope" in r.stderr


def test_splits_csv_with_a_byte_order_mark_is_read(small_copy):
    root, ids = small_copy
    text = (root / "splits.csv").read_text()
    (root / "splits.csv").write_bytes(text.encode("utf-8-sig"))  # as Excel saves "CSV UTF-8"
    assert SegmentationFolder(root).ids("train") == ids


def test_splits_csv_not_in_utf8_is_named(small_copy):
    root, ids = small_copy
    (root / "splits.csv").write_bytes("id,split\nlésion,train\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"splits.csv: not UTF-8 text \(byte 10"):
        SegmentationFolder(root)


def test_zero_limit_is_refused_not_read_as_no_limit(small_copy):
    root, _ = small_copy
    with pytest.raises(DataError, match="limit must be >= 1"):
        SegmentationFolder(root).load_split("train", 64, limit=0)


def test_no_data_folder_says_where_it_looked_and_where_to_read_on(tmp_path, monkeypatch):
    import egeunet.data

    monkeypatch.delenv("EGEUNET_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(egeunet.data, "default_data_candidates",
                        lambda: [tmp_path / "shared/data/isic2018", tmp_path.parent / "shared/data/isic2018"])
    with pytest.raises(DataError) as e:
        resolve_data_root()
    msg = str(e.value)
    assert "--data DIR" in msg and "$EGEUNET_DATA" in msg and "README's Data section" in msg
    assert "shared/data/isic2018" in msg and "../shared/data/isic2018" in msg
    assert resolve_data_root(required=False) is None


def _exif_folder(tmp_path, stored_wh, orientation, mask_frame):
    """One JPEG stored at ``stored_wh`` with EXIF ``orientation`` and a bright block in its stored
    top-left corner; the block's mask drawn in ``mask_frame`` ("stored" pixels or as "shown")."""
    w, h = stored_wh
    pixels = np.full((h, w, 3), 40, np.uint8)
    pixels[: h // 4, : w // 4] = 230
    block = np.zeros((h, w), np.uint8)
    block[: h // 4, : w // 4] = 255
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "images" / "a.jpg", quality=95, exif=exif)
    mask = Image.fromarray(block)
    if mask_frame == "shown":
        mask = mask.transpose(Image.Transpose.ROTATE_270)  # what orientation 6 shows
    mask.save(tmp_path / "masks" / "a.png")
    (tmp_path / "splits.csv").write_text("id,split\na,train\n")
    return SegmentationFolder(tmp_path)


@pytest.mark.parametrize("mask_frame", ["stored", "shown"])
def test_a_mask_lies_under_its_exif_rotated_image(tmp_path, mask_frame):
    """read_image turns a JPEG by its EXIF orientation (6: 90 degrees); a mask drawn on the
    stored pixels was not turned with it: "mask is 40x20 but its image is 20x40". Both frames
    are told apart by their sizes here, and the lesion must lie under the bright block."""
    image, mask = _exif_folder(tmp_path, (40, 20), 6, mask_frame).read_pair("a", 32)
    bright = image.mean(axis=2) > 135
    assert mask.sum() > 20
    assert (bright == mask.astype(bool)).mean() > 0.97


def test_a_square_exif_rotated_image_warns_that_its_mask_frame_is_assumed(tmp_path, caplog):
    """A square image: the sizes cannot tell which way its mask was drawn; the mask is taken as
    drawn on the image as shown, and the run says so once."""
    folder = _exif_folder(tmp_path, (32, 32), 6, "shown")
    with caplog.at_level("WARNING", logger="egeunet.data"):
        image, mask = folder.read_pair("a", 32)
        folder.read_pair("a", 32)
    assert ((image.mean(axis=2) > 135) == mask.astype(bool)).mean() > 0.97
    assert caplog.text.count("has EXIF orientation 6") == 1


def test_a_palette_mask_is_read_by_class_index(tmp_path):
    """VOC-style masks: a palette PNG whose index 1 (lesion) is drawn dark red. Read as grey
    levels, (128, 0, 0) is 38 and the lesion was background (Dice 0)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.new("RGB", (32, 32), (200, 150, 140)).save(tmp_path / "images" / "a.png")
    index = np.zeros((32, 32), np.uint8)
    index[8:24, 8:24] = 1
    mask = Image.fromarray(index, mode="P")
    mask.putpalette([0, 0, 0, 128, 0, 0])
    mask.save(tmp_path / "masks" / "a.png")
    (tmp_path / "splits.csv").write_text("id,split\na,train\n")
    _, got = SegmentationFolder(tmp_path).read_pair("a", 32)
    assert got.sum() == 16 * 16 and got[8:24, 8:24].all()
