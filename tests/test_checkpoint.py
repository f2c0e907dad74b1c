import json

import pytest
import torch

from egeunet.model import egeunet
from egeunet.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, sidecar_path
from egeunet.preprocess import Preprocessing

PRE = Preprocessing(mean=(180.0, 150.0, 140.0), std=(40.0, 45.0, 50.0))


def test_round_trip_restores_weights_config_and_preprocessing(tmp_path):
    torch.manual_seed(0)
    m = egeunet()
    path = save_checkpoint(tmp_path / "w.safetensors", m, PRE, epoch=3)
    loaded, pre, meta = load_checkpoint(path)
    assert pre == PRE and meta["epoch"] == 3 and len(meta["weights_sha256"]) == 64
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), m.eval()(x), rtol=0, atol=0)
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries


def test_corrupt_missing_and_mismatched_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="absent.safetensors: no such weights file"):
        load_checkpoint(tmp_path / "absent.safetensors")
    (tmp_path / "lonely.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="missing JSON sidecar"):
        load_checkpoint(tmp_path / "lonely.safetensors")
    (tmp_path / "model.onnx").write_bytes(b"an export")
    with pytest.raises(CheckpointError, match="model.onnx: not a PyTorch checkpoint; expected a .safetensors"):
        load_checkpoint(tmp_path / "model.onnx")

    path = save_checkpoint(tmp_path / "w.safetensors", egeunet(), PRE)
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(path)

    path = save_checkpoint(tmp_path / "w.safetensors", egeunet(), PRE)
    meta = json.loads(sidecar_path(path).read_text())
    meta["config"]["widths"] = [8, 16, 24, 32, 48, 96]
    sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit the config"):
        load_checkpoint(path)


def test_pickled_file_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, path)  # a pickle, as torch.save writes
    save_checkpoint(tmp_path / "ok.safetensors", egeunet(), PRE)
    sidecar_path(path).write_text(sidecar_path(tmp_path / "ok.safetensors").read_text())
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(path)


def test_save_refuses_a_name_that_load_would_refuse(tmp_path):
    """save_checkpoint('w.pt') wrote safetensors bytes under a name load_checkpoint refuses."""
    with pytest.raises(CheckpointError, match=r"w\.pt: a checkpoint is written as a \.safetensors file"):
        save_checkpoint(tmp_path / "w.pt", egeunet(), PRE)
    assert not list(tmp_path.iterdir())


def test_weights_replaced_after_saving_load_with_a_warning(tmp_path, caplog):
    from egeunet.model.checkpoint import save_tensors

    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "w.safetensors", egeunet(), PRE)
    with caplog.at_level("WARNING", logger="egeunet.model.checkpoint"):
        load_checkpoint(path)
    assert "written for other weights" not in caplog.text
    save_tensors(path, egeunet().state_dict())  # other weights under the same name, sidecar left as it was
    with caplog.at_level("WARNING", logger="egeunet.model.checkpoint"):
        _, pre, meta = load_checkpoint(path)
    assert "w.json was written for other weights" in caplog.text and pre == PRE
    assert meta["weights_sha256"] != json.loads(sidecar_path(path).read_text())["weights_sha256"]
