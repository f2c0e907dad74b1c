import json
import subprocess
import sys

import pytest

from egeunet.metrics import METRICS
from egeunet.model import count_parameters
from egeunet.model.checkpoint import PRETRAINED, file_sha256, load_checkpoint

from conftest import refusal


def test_shipped_weights_load_with_their_contract():
    model, pre, meta = load_checkpoint()  # no path: the weights inside the package
    assert count_parameters(model) == 53_374
    assert pre.size == 256 and pre.threshold == 0.5
    assert all(20 < s < 100 for s in pre.std) and all(80 < m < 220 for m in pre.mean)
    assert meta["data"]["n_train"] == 1634  # trained on the full ISIC 2018 train split
    assert meta["weights_sha256"] == file_sha256(PRETRAINED)
    assert PRETRAINED.stat().st_size < 300_000


def test_shipped_batchnorm_variant_loads_by_name_and_is_a_different_model():
    from egeunet.model.checkpoint import SHIPPED

    model, pre, meta = load_checkpoint("egeunet-bn")
    assert model.config.norms == "batch" and count_parameters(model) == 53_374
    assert meta["weights_sha256"] == file_sha256(SHIPPED["egeunet-bn"]) != file_sha256(PRETRAINED)
    assert meta["data"]["n_train"] == 1634 and meta["train_config"]["norms"] == "batch"
    assert pre.size == 256
    default, _, _ = load_checkpoint("egeunet")
    assert default.config.norms == "paper"


def test_eval_cli_on_the_batchnorm_variant_gives_its_own_measured_dice(isic_root, tmp_path):
    out = tmp_path / "bn.json"
    r = subprocess.run([sys.executable, "-m", "egeunet", "eval", "--split", "test", "--data", str(isic_root),
                        "--weights", "egeunet-bn", "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["n_images"] == 778 and res["pooled"]["dice"] >= 0.885, res["pooled"]  # 0.8930 when shipped


def test_eval_cli_on_shipped_weights_reaches_the_foundation_bar(isic_root, tmp_path):
    out = tmp_path / "out.json"
    r = subprocess.run([sys.executable, "-m", "egeunet", "eval", "--split", "test", "--data", str(isic_root),
                        "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["n_images"] == 778
    assert set(res["pooled"]) == set(METRICS) and set(res["per_image"]) == set(METRICS)
    assert res["weights_sha256"] == file_sha256(PRETRAINED)
    assert res["pooled"]["dice"] >= 0.85, res["pooled"]
    assert "pooled" in r.stdout and "per_image" in r.stdout  # the table on screen


def test_eval_with_missing_weights_is_a_one_line_error(isic_root, tmp_path):
    r = subprocess.run([sys.executable, "-m", "egeunet", "eval", "--data", str(isic_root),
                        "--weights", str(tmp_path / "nope.safetensors")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nope" in r.stderr


def test_eval_bootstrap_adds_intervals_and_per_image_scores(isic_root, tmp_path):
    out = tmp_path / "b.json"
    r = subprocess.run([sys.executable, "-m", "egeunet", "eval", "--split", "val", "--data", str(isic_root),
                        "--limit", "24", "--bootstrap", "200", "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    lo, hi = res["ci95"]["pooled"]["dice"]
    assert lo <= res["pooled"]["dice"] <= hi
    assert len(res["images"]) == 24 and {"id", "dice", "iou"} <= set(res["images"][0])
    assert "95% CI" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--limit", "0"], "--limit: must be >= 1, not 0"),
    (["--limit", "-3"], "--limit: must be >= 1, not -3"),
    (["--bootstrap", "-5"], "--bootstrap: must be >= 0, not -5"),
    (["--threads", "-1"], "--threads: must be >= 1"),
    (["--json", "adir"], "--json adir: is a folder; give a file name"),
    (["--json", "afile/out.json"], "--json afile/out.json: afile is a file, not a folder"),
    (["--weights", "nonexist.safetensors"], "nonexist.safetensors: no such weights file"),
    (["--weights", "model.onnx"], "model.onnx: not a PyTorch checkpoint; expected a .safetensors file"),
])
def test_bad_eval_arguments_are_one_line_errors_before_any_work(args, message, isic_root, tmp_path, capsys,
                                                                 monkeypatch):
    from egeunet.cli import eval_main

    monkeypatch.chdir(tmp_path)

    def no_work(*_args, **_kwargs):
        raise AssertionError("the split was read before the arguments were checked")

    monkeypatch.setattr("egeunet.data.SegmentationFolder.load_split", no_work)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "model.onnx").write_bytes(b"an exported file, not a checkpoint")
    assert message in refusal(eval_main, ["--data", str(isic_root), "--split", "val", *args], capsys)


def test_eval_json_in_a_missing_folder_is_made(isic_root, tmp_path, capsys):
    from egeunet.cli import eval_main

    out = tmp_path / "new" / "sub" / "m.json"
    assert eval_main(["--data", str(isic_root), "--split", "val", "--limit", "2", "--threads", "1",
                      "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n_images"] == 2


def test_predict_probabilities_refuses_images_not_at_the_input_size_or_not_uint8():
    """Floats 0..1 gave silently wrong probabilities, 512x512 images a 512x512 map, a single
    (H, W, 3) image a torch error about permute."""
    import numpy as np

    from egeunet.evaluate import predict_probabilities

    model, pre, _ = load_checkpoint()
    images = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    for bad in (images.astype(np.float32) / 255, np.zeros((1, 512, 512, 3), np.uint8), images[0],
                np.ascontiguousarray(images.transpose(0, 3, 1, 2))):
        with pytest.raises(ValueError, match=r"expected uint8 images \(N, 256, 256, 3\)"):
            predict_probabilities(model, bad, pre)
    flipped = images[:, ::-1]  # negative strides: torch.from_numpy refused them
    np.testing.assert_array_equal(predict_probabilities(model, flipped, pre),
                                  predict_probabilities(model, np.ascontiguousarray(flipped), pre))


def test_masks_stored_as_0_and_1_are_read_as_lesion(isic_root, tmp_path, capsys):
    """Masks saved as 0/1 (a common convention, and what egeunet.metrics takes) were read as
    "lesion where > 127": all background, Dice 0 without a word."""
    import csv
    import shutil

    import numpy as np
    from PIL import Image

    from egeunet.cli import eval_main

    ids = [r["id"] for r in csv.DictReader(open(isic_root / "splits.csv")) if r["split"] == "val"][:3]
    results = {}
    for kind in ("0-255", "0-1"):
        root = tmp_path / kind
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        (root / "splits.csv").write_text("id,split\n" + "".join(f"{i},val\n" for i in ids))
        for i in ids:
            shutil.copy(isic_root / "images" / f"{i}.jpg", root / "images")
            truth = np.asarray(Image.open(isic_root / "masks" / f"{i}.png")) > 127
            Image.fromarray(truth.astype(np.uint8) * (255 if kind == "0-255" else 1)).save(root / "masks" / f"{i}.png")
        assert eval_main(["--data", str(root), "--split", "val", "--json", str(tmp_path / f"{kind}.json")]) == 0
        results[kind] = json.loads((tmp_path / f"{kind}.json").read_text())
    assert results["0-255"]["pooled"]["dice"] > 0.8
    assert results["0-1"]["pooled"] == results["0-255"]["pooled"]
    assert results["0-1"]["per_image"] == results["0-255"]["per_image"]


def _eval_json(args: list[str], out) -> dict:
    r = subprocess.run([sys.executable, "-m", "egeunet", "eval", *args, "--json", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


def test_eval_scores_an_exported_file_as_deployed(isic_root, tmp_path, tflite_exports):
    """`egeunet-eval --model FILE`: the Dice of the exported file itself, through its runtime
    and its manifest's preprocessing, next to the checkpoint's on the same images."""
    from egeunet.export import export

    onnx_dir = tmp_path / "onnx"
    export("onnx", out=onnx_dir, num_verify=2, data=str(isic_root))
    common = ["--split", "test", "--data", str(isic_root), "--limit", "24"]
    torch_res = _eval_json(common, tmp_path / "torch.json")
    onnx_res = _eval_json([*common, "--model", str(onnx_dir / "egeunet_fp32.onnx"), "--bootstrap", "50"],
                          tmp_path / "onnx.json")
    assert onnx_res["runtime"] == "onnxruntime" and onnx_res["n_images"] == 24
    assert onnx_res["model_sha256"] == file_sha256(onnx_dir / "egeunet_fp32.onnx")
    assert abs(onnx_res["pooled"]["dice"] - torch_res["pooled"]["dice"]) < 1e-3  # fp32: the same masks
    assert len(onnx_res["images"]) == 24 and "ci95" in onnx_res
    r, int8_dir = tflite_exports["int8"]
    assert r.returncode == 0, r.stderr[-2000:]
    int8_res = _eval_json([*common, "--model", str(int8_dir / "egeunet_int8.tflite")], tmp_path / "int8.json")
    assert int8_res["runtime"] == "litert"
    assert abs(int8_res["pooled"]["dice"] - torch_res["pooled"]["dice"]) < 0.01
    assert int8_res["pooled"]["dice"] != onnx_res["pooled"]["dice"]  # int8 masks are not the float ones


def test_eval_refuses_weights_and_model_together(capsys):
    from egeunet.cli import eval_main

    assert "give --weights (a checkpoint) or --model (an exported file), not both" in refusal(
        eval_main, ["--weights", "egeunet", "--model", "x.onnx"], capsys)
