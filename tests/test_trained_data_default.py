"""Weights trained on one data folder are measured on that folder unless --data says otherwise.

Found by training on Kvasir-SEG with ../shared/data/isic2018 beside the checkout: egeunet-eval,
egeunet-export (parity images, int8 calibration) and egeunet-bench silently took the ISIC folder,
named only in a trailing line or the manifest's parity entry."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

import egeunet.data as data_mod
from egeunet.cli import eval_main
from egeunet.data import SegmentationFolder, resolve_data_root
from egeunet.model import egeunet
from egeunet.model.checkpoint import save_checkpoint
from egeunet.preprocess import Preprocessing


def _folder(root, seed: int):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = ["id,split"]
    for i, split in enumerate(["train", "val", "test", "test"]):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "images" / f"s{i}.jpg")
        mask = np.zeros((64, 64), np.uint8)
        mask[16:40, 20:44] = 255
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
        rows.append(f"s{i},{split}")
    (root / "splits.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def trained_elsewhere(tmp_path, monkeypatch):
    """(checkpoint trained on ``own``, ``own``, ``other``) with ``other`` as the default folder."""
    own, other = _folder(tmp_path / "kvasir", 1), _folder(tmp_path / "isic", 2)
    monkeypatch.delenv(data_mod.ENV_VAR, raising=False)
    monkeypatch.setattr(data_mod, "default_data_candidates", lambda: [other])
    torch.manual_seed(0)
    pre = Preprocessing(size=256, mean=(140.0, 80.0, 60.0), std=(80.0, 55.0, 45.0))
    provenance = {"data_root": str(own), "data_fingerprint": SegmentationFolder(own).fingerprint(),
                  "n_train": 1, "n_val": 1}
    ckpt = save_checkpoint(tmp_path / "run" / "best.safetensors", egeunet().eval(), pre, data=provenance)
    return ckpt, own, other


def _eval_json(args, out) -> dict:
    assert eval_main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_eval_without_data_uses_the_folder_the_weights_were_trained_on(trained_elsewhere, tmp_path):
    ckpt, own, _other = trained_elsewhere
    assert _eval_json(["--weights", str(ckpt)], tmp_path / "e.json")["data_root"] == str(own)


def test_data_flag_still_wins(trained_elsewhere, tmp_path):
    ckpt, _own, other = trained_elsewhere
    assert _eval_json(["--weights", str(ckpt), "--data", str(other)], tmp_path / "e.json")["data_root"] == str(other)


def test_another_folder_from_the_environment_is_warned_about(trained_elsewhere, monkeypatch, caplog):
    _ckpt, own, other = trained_elsewhere
    monkeypatch.setenv(data_mod.ENV_VAR, str(other))
    trained_on = {"data_root": str(own), "data_fingerprint": SegmentationFolder(own).fingerprint()}
    with caplog.at_level(logging.WARNING):
        assert resolve_data_root(None, trained_on=trained_on) == other
    assert "not on the data these weights were trained on" in caplog.text
    monkeypatch.setenv(data_mod.ENV_VAR, str(own))
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the same files elsewhere are the same data: nothing to say
        assert resolve_data_root(None, trained_on={**trained_on, "data_root": "/moved/away"}) == own
    assert "not on the data" not in caplog.text


def test_export_checks_parity_on_the_training_folder_and_records_it(trained_elsewhere, tmp_path):
    pytest.importorskip("onnxruntime")
    from egeunet.export.api import export

    ckpt, own, _other = trained_elsewhere
    # the subject here is where parity is measured, not its gate: untrained weights sit near the
    # fp32 gate (1e-4) on some runs
    result = export("onnx", weights=ckpt, out=tmp_path / "onnx", num_verify=2, max_prob_diff=0.5)
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["parity"]["images"] == f"test split of {own}"
    assert manifest["weights_data"]["data_fingerprint"] == SegmentationFolder(own).fingerprint()
    # and egeunet-eval --model reads it back from the manifest
    assert _eval_json(["--model", str(result.path)], tmp_path / "m.json")["data_root"] == str(own)


def test_a_failed_probability_gate_names_the_flag_that_lifts_it(trained_elsewhere, tmp_path, capsys):
    """--min-iou cannot lift the fp32 max |probability diff| gate; the message used to name only it."""
    pytest.importorskip("onnxruntime")
    from egeunet.cli import export_main

    ckpt, _own, _other = trained_elsewhere
    args = ["--target", "onnx", "--weights", str(ckpt), "--num-verify", "2"]
    assert export_main([*args, "--out", str(tmp_path / "a"), "--max-prob-diff", "0"]) != 0
    err = capsys.readouterr().err
    assert "max |probability diff|" in err and "--max-prob-diff" in err and "--min-iou" not in err
    assert export_main([*args, "--out", str(tmp_path / "b"), "--max-prob-diff", "0.5"]) == 0
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["parity"]["gate"]["max_abs_prob"] == 0.5


def test_a_training_folder_that_now_holds_other_data_is_not_taken(trained_elsewhere, tmp_path):
    """The sidecar's folder is used only while it holds the recorded data (by fingerprint): the
    same path may since hold another data set."""
    ckpt, own, other = trained_elsewhere
    (own / "images" / "extra.jpg").write_bytes((own / "images" / "s0.jpg").read_bytes())  # the data changed
    assert _eval_json(["--weights", str(ckpt)], tmp_path / "e.json")["data_root"] == str(other)
