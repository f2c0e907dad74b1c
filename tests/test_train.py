import subprocess
import sys

import numpy as np
import torch

from egeunet.data import SegmentationFolder, channel_stats
from egeunet.evaluate import images_to_tensor
from egeunet.model import egeunet
from egeunet.model.checkpoint import load_checkpoint, load_tensors
from egeunet.preprocess import Preprocessing
from egeunet.train import augment, deep_supervision_loss


def test_loss_falls_on_real_isic_images(isic_root):
    torch.manual_seed(0)
    split = SegmentationFolder(isic_root).load_split("train", 128, limit=8)
    mean, std = channel_stats(split.images)
    pre = Preprocessing(size=128, mean=mean, std=std)
    x = images_to_tensor(torch.from_numpy(split.images), pre)
    y = torch.from_numpy(split.masks).float()[:, None]
    model = egeunet().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    losses = []
    for _ in range(12):
        loss = deep_supervision_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def test_augment_moves_mask_and_image_together():
    gen = torch.Generator().manual_seed(3)
    y = torch.zeros(16, 1, 64, 64)
    y[:, :, 4:36, 28:60] = 1.0  # an off-centre square
    x = y.repeat(1, 3, 1, 1) * 2.0 - 1.0  # image = mask, so both must stay aligned
    xa, ya = augment(x, y, gen)
    inside = ya[:, 0] > 0.5
    assert (xa[:, 0][inside] > 0.5).float().mean() > 0.9
    # per-sample draws: not every sample gets the same transform
    assert len({tuple(torch.nonzero(m[0]).float().mean(0).round().tolist()) for m in ya}) > 3


def _train_cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "egeunet", "train", *args], capture_output=True, text=True, cwd=cwd)


def test_one_epoch_shows_progress_leaves_checkpoint_and_resume_continues(isic_root, tmp_path):
    common = ["--data", str(isic_root), "--limit-train", "16", "--limit-val", "8", "--threads", "2", "--seed", "7"]
    r = _train_cli([*common, "--epochs", "1", "--out", "run"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1" in r.stderr and "batch/s" in r.stderr and "val_dice=" in r.stderr  # tqdm bar
    run = tmp_path / "run"
    model, pre, meta = load_checkpoint(run / "best.safetensors")
    assert meta["epoch"] == 1 and 0.0 <= meta["val"]["pooled"]["dice"] <= 1.0
    assert meta["data"]["n_train"] == 16 and len(meta["data"]["data_fingerprint"]) == 64
    assert pre.mean != (0.0, 0.0, 0.0)  # normalisation measured on the train split

    r = _train_cli([*common, "--epochs", "2", "--out", "run", "--resume"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "epoch 2/2" in r.stderr and "epoch 1/2" not in r.stderr
    log = (run / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2"]
    assert load_checkpoint(run / "last.safetensors")[2]["epoch"] == 2


def test_interrupted_and_resumed_run_equals_uninterrupted_run(isic_root, tmp_path):
    common = ["--data", str(isic_root), "--limit-train", "16", "--limit-val", "8", "--threads", "2",
              "--seed", "7", "--epochs", "2"]
    for args in (["--stop-after-epoch", "1", "--out", "split"], ["--resume", "--out", "split"], ["--out", "straight"]):
        r = _train_cli([*common, *args], tmp_path)
        assert r.returncode == 0, r.stderr
    a = load_tensors(tmp_path / "split" / "last.safetensors")
    b = load_tensors(tmp_path / "straight" / "last.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_resume_without_a_run_is_a_clear_error(isic_root, tmp_path):
    r = _train_cli(["--data", str(isic_root), "--epochs", "1", "--out", "empty", "--resume"], tmp_path)
    assert r.returncode == 2 and "nothing to resume" in r.stderr and "Traceback" not in r.stderr
