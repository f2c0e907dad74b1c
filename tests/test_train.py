import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from egeunet.data import SegmentationFolder, channel_stats
from egeunet.evaluate import images_to_tensor
from egeunet.model import egeunet
from egeunet.model.checkpoint import load_checkpoint, load_tensors
from egeunet.preprocess import Preprocessing
from egeunet.train import affine_grid, augment, deep_supervision_loss, random_affines

from conftest import refusal


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


@pytest.mark.parametrize("h, w", [(256, 256), (37, 64)])
def test_affine_grid_equals_pytorchs(h, w):
    """The broadcast grid is F.affine_grid's (align_corners=False) to float rounding, so the
    warped images are the same (flips and rotations as training draws them, plus a shear)."""
    theta = torch.cat([random_affines(16, torch.Generator().manual_seed(5)), torch.tensor([[[1.0, 0.3, -0.2], [0.1, 0.9, 0.4]]])])
    ref = torch.nn.functional.affine_grid(theta, [17, 3, h, w], align_corners=False)
    got = affine_grid(theta, h, w)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)


def test_training_batch_with_the_compiled_normalisation_is_the_eager_batch(tmp_path, monkeypatch):
    """The CPU batch's normalisation as one compiled kernel gives the eager batch bit for bit, in
    channels_last, and its compiled kernel is kept on disk for the next process."""
    from conftest import skip_without_cxx_compiler
    from egeunet.train import _NORMALISE, training_batch

    monkeypatch.setattr("egeunet.model.fast_norms.kernel_cache_dir", lambda: tmp_path)
    monkeypatch.setattr(_NORMALISE, "compiled", {})  # as in a new process
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8, generator=gen)
    masks = (torch.rand(6, 32, 32, generator=gen) > 0.5).to(torch.uint8)
    pre = Preprocessing(size=32, mean=(180.5, 150.0, 140.25), std=(40.0, 45.5, 50.0))
    idx, theta = torch.tensor([4, 1, 3]), random_affines(3, gen)
    x_eager, y_eager = training_batch(images, masks, idx, pre, gen, theta, compiled=False)
    x, y = training_batch(images, masks, idx, pre, gen, theta)
    if _NORMALISE.group.failed is not None:
        skip_without_cxx_compiler("the compiled batch normalisation")
    assert torch.equal(x, x_eager) and torch.equal(y, y_eager)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert len(list(tmp_path.glob("*.bin"))) == 1


def _train_cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "egeunet", "train", *args], capture_output=True, text=True, cwd=cwd)


def test_one_epoch_shows_progress_leaves_checkpoint_and_resume_continues(isic_root, tmp_path):
    common = ["--data", str(isic_root), "--limit-train", "16", "--limit-val", "8", "--threads", "2", "--seed", "7"]
    r = _train_cli([*common, "--epochs", "1", "--out", "run"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1" in r.stderr and "batch/s" in r.stderr and "val_dice=" in r.stderr  # tqdm bar
    assert "the first step compiles the training kernels" in r.stderr  # says why the first step is slow
    assert "each step's batch is split over 2 processes of 1 thread(s)" in r.stderr  # the default with 2 threads
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
        # only the stopped session says how to go on
        assert ("stopped after epoch 1 of 2: add --resume" in r.stdout) == ("--stop-after-epoch" in args), r.stdout
    a = load_tensors(tmp_path / "split" / "last.safetensors")
    b = load_tensors(tmp_path / "straight" / "last.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_resume_without_a_run_is_a_clear_error(isic_root, tmp_path):
    r = _train_cli(["--data", str(isic_root), "--epochs", "1", "--out", "empty", "--resume"], tmp_path)
    assert r.returncode == 2 and "nothing to resume" in r.stderr and "Traceback" not in r.stderr


def test_resume_of_a_finished_run_says_nothing_to_do_and_leaves_summary_alone(isic_root, tmp_path):
    common = ["--data", str(isic_root), "--limit-train", "2", "--limit-val", "2", "--threads", "1", "--no-compile",
              "--quiet", "--out", "run"]
    r = _train_cli([*common, "--epochs", "2", "--stop-after-epoch", "1"], tmp_path)
    assert r.returncode == 0, r.stderr
    summary = (tmp_path / "run" / "summary.json").read_bytes()
    for extra, message in ((["--epochs", "1"], "already finished epoch 1 of 1"),
                           (["--epochs", "2", "--stop-after-epoch", "1"], "--stop-after-epoch 1 must be later")):
        r = _train_cli([*common, *extra, "--resume"], tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "nothing to do" in r.stderr and message in r.stderr, r.stderr
        assert (tmp_path / "run" / "summary.json").read_bytes() == summary
    # damaged files of the run are named, not tracebacks from deep inside
    from egeunet.model.checkpoint import SHIPPED

    run = tmp_path / "run"
    for name, damage, message in (("log.csv", b"epoch,lr\ngarbage,1\n", "log.csv: not a training log"),
                                  ("last.safetensors", SHIPPED["egeunet-bn"].read_bytes(), "do not fit the model")):
        kept = (run / name).read_bytes()
        (run / name).write_bytes(damage)
        r = _train_cli([*common, "--epochs", "2", "--resume"], tmp_path)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
        (run / name).write_bytes(kept)
    r = _train_cli([*common, "--epochs", "2", "--resume"], tmp_path)  # the epoch that is left still runs
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epoch"] == 2
    r = _train_cli([*common, "--epochs", "1", "--resume"], tmp_path)
    assert r.returncode == 2 and "is at epoch 2, past --epochs 1" in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--stop-after-epoch", "0"], "--stop-after-epoch: must be >= 1"),
    (["--stop-after-epoch", "-1"], "--stop-after-epoch: must be >= 1"),
    (["--limit-train", "0"], "--limit-train: must be >= 1"),
    (["--limit-val", "-2"], "--limit-val: must be >= 1"),
    (["--threads", "-1"], "--threads: must be >= 1"),
    (["--threads", "100000"], "more than 4x"),
    (["--out", "afile"], "--out afile: is a file, not a folder"),
    (["--processes", "0"], "--processes: must be >= 1"),
    (["--processes", "2", "--norms", "batch"], "its step cannot be split (use --processes 1)"),
    (["--processes", "3", "--batch-size", "2"], "--processes 3 is more than --batch-size 2"),
    (["--processes", "2", "--threads", "1"], "--processes 2 is more than the 1 threads"),
])
def test_bad_train_arguments_are_refused_before_any_work(args, message, isic_root, tmp_path, capsys, monkeypatch):
    from egeunet.cli import train_main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    assert message in refusal(train_main, ["--data", str(isic_root), "--epochs", "1", *args], capsys)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "--lr must be a positive number, not -1.0"),
    (["--lr", "nan"], "--lr must be a positive number, not nan"),
    (["--lr", "inf"], "--lr must be a positive number, not inf"),  # trained NaN weights, exit 0
    (["--lr", "0"], "--lr must be a positive number, not 0.0"),
    (["--weight-decay", "-1"], "--weight-decay must be a number >= 0, not -1.0"),
    (["--weight-decay", "inf"], "--weight-decay must be a number >= 0, not inf"),
    (["--seed", str(2**70)], "--seed must lie between"),  # was "Overflow when unpacking long long"
    (["--plot-every", "0"], "--plot-every: must be >= 1"),
])
def test_nonsensical_rates_seeds_and_plot_intervals_are_refused_before_any_work(args, message, isic_root, tmp_path,
                                                                                capsys, monkeypatch):
    from egeunet.cli import train_main

    monkeypatch.chdir(tmp_path)
    bounded = ["--limit-train", "2", "--limit-val", "2", "--threads", "1", "--no-compile", "--quiet"]
    assert message in refusal(train_main, ["--data", str(isic_root), "--epochs", "1", *bounded, *args], capsys)
    assert not (tmp_path / "runs").exists()  # AdamW's refusal came after the output folder was made


def test_a_rate_below_the_schedule_s_floor_is_held_not_raised(isic_root, tmp_path):
    """--lr 1e-6 (fine-tuning) under the default min_lr 1e-5: the cosine "decay" rose tenfold
    over the run. The rate is held instead, and the run records the floor it used."""
    import json

    from egeunet.train import TrainConfig, cosine_lr, train

    assert cosine_lr(10, 10, 1e-6, 1e-5) == pytest.approx(1e-5)  # what the schedule did: a rise
    cfg = TrainConfig(data=str(isic_root), out=str(tmp_path / "o"), epochs=1, lr=1e-6, limit_train=2, limit_val=2,
                      threads=1, compiled_kernels=False, progress=False)
    train(cfg)
    assert json.loads((tmp_path / "o" / "last.json").read_text())["train_config"]["min_lr"] == 1e-6


@pytest.mark.parametrize("field, value, message", [
    ("limit_val", 0, "--limit-val must be >= 1, not 0"), ("limit_train", 0, "--limit-train must be >= 1, not 0"),
    ("stop_after_epoch", 0, "--stop-after-epoch must be >= 1, not 0"), ("threads", 0, "--threads must be >= 1, not 0"),
    ("out", "afile", "is a file, not a folder"),
])
def test_train_api_refuses_bad_settings(field, value, message, isic_root, tmp_path):
    from egeunet.train import TrainConfig, train

    (tmp_path / "afile").write_text("not a folder")
    cfg = TrainConfig(data=str(isic_root), out=str(tmp_path / "o"), epochs=1, limit_train=2, limit_val=2,
                      compiled_kernels=False, progress=False)  # bounded, should a check go missing
    setattr(cfg, field, str(tmp_path / value) if field == "out" else value)
    with pytest.raises(ValueError, match=message):
        train(cfg)
    assert not (tmp_path / "o").exists()


def test_a_run_that_cannot_start_leaves_no_output_folder(tmp_path):
    from egeunet.data import DataError
    from egeunet.train import TrainConfig, train

    (tmp_path / "data").mkdir()  # no splits.csv, no images
    with pytest.raises(DataError, match="missing folder"):
        train(TrainConfig(data=str(tmp_path / "data"), out=str(tmp_path / "o"), progress=False))
    assert not (tmp_path / "o").exists()


def test_a_new_run_refuses_to_overwrite_an_earlier_run_in_its_folder(tmp_path, capsys, monkeypatch):
    from egeunet.cli import train_main

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "isic2018"
    run.mkdir(parents=True)
    kept = {name: f"checkpoint of epoch 200: {name}".encode() for name in ("best.safetensors", "last.safetensors")}
    for name, data in kept.items():
        (run / name).write_bytes(data)
    (tmp_path / "data").mkdir()  # checked before any data is read: an empty folder is enough
    err = refusal(train_main, ["--data", "data", "--epochs", "1", "--out", "runs/isic2018"], capsys)
    assert "already holds a training run" in err and "--resume" in err, err
    assert {name: (run / name).read_bytes() for name in kept} == kept


def test_resume_with_other_settings_or_data_is_refused(isic_root, tmp_path):
    base = {"--limit-train": "4", "--limit-val": "2", "--batch-size": "2", "--epochs": "3", "--seed": "7",
            "--lr": "1e-3", "--weight-decay": "1e-2"}
    flags = ["--data", str(isic_root), "--threads", "1", "--no-compile", "--quiet", "--out", "run"]

    def args(**change):
        merged = {**base, **{f"--{k.replace('_', '-')}": v for k, v in change.items()}}
        return [*flags, *(x for kv in merged.items() for x in kv)]

    r = _train_cli([*args(), "--stop-after-epoch", "1"], tmp_path)
    assert r.returncode == 0, r.stderr
    kept = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    for change, message in (({"lr": "5e-3"}, "--lr 0.001 (now 0.005)"),
                            ({"batch_size": "1"}, "--batch-size 2 (now 1)"),
                            ({"seed": "8"}, "--seed 7 (now 8)"),
                            ({"weight_decay": "0.5"}, "--weight-decay 0.01 (now 0.5)"),
                            ({"limit_train": "6"}, "--limit-train 4 (now 6)"),
                            ({"limit_val": "3"}, "--limit-val 2 (now 3)")):
        r = _train_cli([*args(**change), "--resume"], tmp_path)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (change, r.stderr)
        assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == kept
    # another data folder (another fingerprint): a copy of the data with one image changed
    import os
    import shutil

    other = tmp_path / "other"
    shutil.copytree(isic_root, other, copy_function=os.symlink)  # links: cheap
    victim = sorted((other / "images").iterdir())[-1]
    data = victim.read_bytes()
    victim.unlink()
    victim.write_bytes(data + b"\0")  # same name, other size: other data
    r = _train_cli([*args(), "--resume", "--data", str(other)], tmp_path)
    assert r.returncode == 2 and "data fingerprint" in r.stderr, r.stderr
    # --epochs may change (extending a run), but not silently
    r = _train_cli([*args(epochs="4"), "--resume", "--stop-after-epoch", "2"], tmp_path)
    assert r.returncode == 0 and "the cosine schedule changes" in r.stderr, r.stderr


def test_resume_refuses_a_save_that_was_cut_short(isic_root, tmp_path, monkeypatch):
    import egeunet.train as T
    from egeunet.model.checkpoint import CheckpointError, save_tensors

    cfg = dict(data=str(isic_root), out=str(tmp_path / "run"), epochs=3, batch_size=2, limit_train=4, limit_val=2,
               threads=1, compiled_kernels=False, progress=False)
    T.train(T.TrainConfig(**cfg, stop_after_epoch=1))

    def cut(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C after last.safetensors of epoch 2, before its optimizer state

    with monkeypatch.context() as m:
        m.setattr(T, "_save_train_state", cut)
        with pytest.raises(KeyboardInterrupt):
            T.train(T.TrainConfig(**cfg, resume=True))
    with pytest.raises(CheckpointError, match="from epoch 2 but last.state.safetensors from epoch 1"):
        T.train(T.TrainConfig(**cfg, resume=True))
    # weights written, sidecar not: the sidecar's sha256 no longer names the weights
    last = tmp_path / "run" / "last.safetensors"
    w = load_tensors(last)
    save_tensors(last, {k: v + 1 if v.is_floating_point() else v for k, v in w.items()})
    with pytest.raises(CheckpointError, match="do not match its sidecar's sha256"):
        T.train(T.TrainConfig(**cfg, resume=True))


def test_a_run_interrupted_before_its_log_was_written_keeps_every_epoch_in_the_log(isic_root, tmp_path, monkeypatch):
    """Ctrl-C after epoch 2's checkpoints and optimizer state, before its log.csv row: the resumed
    run went on from epoch 3 and its log had no row for epoch 2."""
    import csv

    import egeunet.train as T

    cfg = dict(data=str(isic_root), out=str(tmp_path / "run"), epochs=3, batch_size=2, limit_train=4, limit_val=2,
               threads=1, compiled_kernels=False, progress=False)
    T.train(T.TrainConfig(**cfg, stop_after_epoch=1))
    write_log = T._write_log
    epoch_2_saved = []

    def cut(path, rows):  # Ctrl-C at epoch 2's log, once its state is saved (or before, with the fix)
        if rows[-1]["epoch"] == 2:
            epoch_2_saved.append(True)
            raise KeyboardInterrupt
        write_log(path, rows)

    with monkeypatch.context() as m:
        m.setattr(T, "_write_log", cut)
        with pytest.raises(KeyboardInterrupt):
            T.train(T.TrainConfig(**cfg, resume=True))
    assert epoch_2_saved
    T.train(T.TrainConfig(**cfg, resume=True))
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]


SIGTERM_MID_SAVE = """
import os, signal, sys
import egeunet.model.checkpoint as C

real_fsync = os.fsync

def fsync(fd):  # `kill` (or a cancelled job) lands while a checkpoint's temporary file is written
    os.kill(os.getpid(), signal.SIGTERM)
    real_fsync(fd)

C.os.fsync = fsync
from egeunet.cli import train_main
sys.exit(train_main(sys.argv[1:]))
"""


def test_sigterm_during_a_checkpoint_save_leaves_no_temporary_file(isic_root, tmp_path):
    """SIGTERM's default action ends the process without running clean-up: each kill mid-save
    left a temporary file (.log.csv.*.tmp, .best.safetensors.*.tmp: a whole checkpoint) in --out."""
    r = subprocess.run([sys.executable, "-c", SIGTERM_MID_SAVE, "--data", str(isic_root), "--epochs", "1",
                        "--limit-train", "2", "--limit-val", "2", "--threads", "1", "--no-compile", "--quiet",
                        "--out", "run"], capture_output=True, text=True, cwd=tmp_path)
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    assert r.returncode == 143, r.stderr  # 128 + SIGTERM, as a shell reports a terminated job


def test_resume_refuses_another_run_s_optimizer_state(isic_root, tmp_path):
    """A last.state.safetensors copied from another run at the same epoch passed every check (the
    epoch matched) and resumed with the wrong AdamW moments and best Dice, silently."""
    import shutil

    import egeunet.train as T
    from egeunet.model.checkpoint import CheckpointError

    def cfg(name, seed, **more):
        return T.TrainConfig(data=str(isic_root), out=str(tmp_path / name), epochs=2, batch_size=2, limit_train=2,
                             limit_val=2, threads=1, compiled_kernels=False, progress=False, seed=seed, **more)

    T.train(cfg("a", 1, stop_after_epoch=1))
    T.train(cfg("b", 2, stop_after_epoch=1))
    own = (tmp_path / "a" / "last.state.safetensors").read_bytes()
    shutil.copy(tmp_path / "b" / "last.state.safetensors", tmp_path / "a" / "last.state.safetensors")
    with pytest.raises(CheckpointError, match="last.state.safetensors: written for other weights than last.safetensors"):
        T.train(cfg("a", 1, resume=True))
    (tmp_path / "a" / "last.state.safetensors").write_bytes(own)
    assert T.train(cfg("a", 1, resume=True))["epoch"] == 2


def test_resume_names_a_damaged_or_foreign_optimizer_state_or_sidecar(isic_root, tmp_path):
    """These ended in a KeyError / AttributeError traceback, or 'invalid literal for int()'
    naming no file."""
    import shutil

    from safetensors.torch import load_file, save_file

    import egeunet.train as T
    from egeunet.model.checkpoint import CheckpointError

    cfg = dict(data=str(isic_root), out=str(tmp_path / "run"), epochs=2, batch_size=2, limit_train=2, limit_val=2,
               threads=1, compiled_kernels=False, progress=False)
    T.train(T.TrainConfig(**cfg, stop_after_epoch=1))
    run = tmp_path / "run"
    kept = {name: (run / name).read_bytes() for name in ("last.state.safetensors", "last.json")}

    def no_best(state):
        t = load_file(state)
        del t["_best"]
        save_file(t, state)

    def sidecar(**change):
        def edit(path):
            meta = json.loads(path.read_text())
            meta.update(change)
            path.write_text(json.dumps(meta))
        return edit

    for name, damage, message in (
            ("last.state.safetensors", lambda p: shutil.copy(run / "last.safetensors", p),
             "last.state.safetensors: not an optimizer state this trainer wrote"),
            ("last.state.safetensors", no_best, "last.state.safetensors: not an optimizer state this trainer wrote"),
            ("last.json", sidecar(preprocessing={}), "last.json: bad config or preprocessing entry"),
            ("last.json", sidecar(config=None), "last.json: bad config or preprocessing entry")):
        damage(run / name)
        with pytest.raises(CheckpointError, match=message):
            T.train(T.TrainConfig(**cfg, resume=True))
        (run / name).write_bytes(kept[name])
    assert T.train(T.TrainConfig(**cfg, resume=True))["epoch"] == 2  # the run itself was fine
