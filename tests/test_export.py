"""Exports of the shipped weights, each verified against PyTorch by the exporter itself and
re-checked here through the runtimes. ONNX and Core ML conversion are quick; the three
TFLite variants share a module-scoped fixture (onnx2tf takes about a minute each)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from egeunet.export import ParityError, export
from egeunet.export.calibration import calibration_images, synthetic_dermoscopy
from egeunet.model.checkpoint import PRETRAINED, file_sha256
from egeunet.runtimes import open_runtime

pytest.importorskip("onnx", reason="export extra not installed: pip install -e '.[export]'")

MANIFEST_KEYS = {"sha256", "bytes", "target", "precision", "io", "preprocessing", "threshold",
                 "weights_sha256", "tools", "parity"}


def _check_manifest(out, suffix):
    man = json.loads((out / "manifest.json").read_text())
    assert MANIFEST_KEYS <= set(man)
    art = out / man["file"]
    assert art.suffix == suffix and art.exists()
    assert man["weights_sha256"] == file_sha256(PRETRAINED)
    assert not list(out.glob(".egeunet-export-*"))  # staging cleaned up
    return man, art


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory, isic_root):
    out = tmp_path_factory.mktemp("onnx")
    return export("onnx", out=out, data=isic_root, num_verify=32), out


def test_onnx_export_checks_and_parity(onnx_export):
    import onnx

    result, out = onnx_export
    man, art = _check_manifest(out, ".onnx")
    onnx.checker.check_model(str(art), full_check=True)
    proto = onnx.load(str(art))
    assert proto.opset_import[0].version == 17
    ops = {n.op_type for n in proto.graph.node}
    assert "Reshape" not in ops and "InstanceNormalization" not in ops  # deploy rewrite
    assert man["graph"]["nodes"] < man["graph"]["nodes_exported"] / 1.5  # onnxsim folded GHPA branches
    assert man["parity"]["max_abs_prob"] <= 1e-4 and man["parity"]["iou"] >= 0.999
    assert man["parity"]["n_images"] == 32 and "test split" in man["parity"]["images"]


def test_onnx_runtime_matches_torch_through_the_runtime_interface(onnx_export, isic_root):
    from egeunet.export.calibration import images_from_split

    _, out = onnx_export
    ort_rt = open_runtime(next(out.glob("*.onnx")))
    torch_rt = open_runtime()
    for img in images_from_split(isic_root, "test", 4, 256):
        assert np.abs(ort_rt.predict(img) - torch_rt.predict(img)).max() <= 1e-4


def test_same_export_twice_gives_the_same_bytes(onnx_export, tmp_path, isic_root):
    _, out = onnx_export
    again = export("onnx", out=tmp_path, data=isic_root, num_verify=2)
    assert file_sha256(again.path) == file_sha256(next(out.glob("*.onnx")))


def test_parity_failure_exits_nonzero_and_leaves_no_artifact(tmp_path, isic_root):
    with pytest.raises(ParityError, match="Nothing was written"):
        export("onnx", out=tmp_path, data=isic_root, num_verify=4, min_iou=1.01)
    assert list(tmp_path.iterdir()) == []  # the folder was there before: it stays, empty
    with pytest.raises(ParityError):
        export("onnx", out=tmp_path / "new" / "onnx", data=isic_root, num_verify=4, min_iou=1.01)
    assert list(tmp_path.iterdir()) == []  # the folders the export made (new/, new/onnx/) are gone again


@pytest.mark.parametrize("args, message", [
    (["--target", "tflite2"], "invalid choice"),
    (["--target", "onnx", "--int8"], "--target onnx is the fp32 hub"),
    (["--target", "onnx", "--weights", "missing.safetensors"], "missing.safetensors: no such weights file"),
    (["--target", "tflite", "--int8", "--full-integer", "--calib", "EMPTY"], "no readable image for calibration"),
    (["--target", "tflite", "--int8", "--calib", "EMPTY"], "--calib and --num-calib apply to --full-integer"),
    (["--target", "onnx", "--full-integer"], "--full-integer goes with --target tflite --int8"),
    (["--target", "onnx", "--out", "/proc/egeunet-no"], "cannot create the output folder"),
    (["--target", "onnx", "--min-iou", "nan"], "--min-iou: must lie in [0, 1], not nan"),
    (["--target", "onnx", "--min-iou", "1.5"], "--min-iou: must lie in [0, 1], not 1.5"),
])
def test_cli_errors_are_one_line(args, message, tmp_path):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "EMPTY" / "note.jpg").write_text("not an image")
    r = subprocess.run([sys.executable, "-m", "egeunet", "export", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and message in r.stderr, r.stderr


def test_corrupt_weights_are_refused(tmp_path):
    from egeunet.model.checkpoint import CheckpointError, sidecar_path

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    sidecar_path(bad).write_text(sidecar_path(PRETRAINED).read_text())
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        export("onnx", weights=bad, out=tmp_path / "o")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_calibration_sources(tmp_path, isic_root, caplog):
    imgs, src = calibration_images(None, 5, 64, isic_root)
    assert imgs.shape == (5, 64, 64, 3) and "train split" in src
    with caplog.at_level("WARNING"):
        imgs, src = calibration_images(None, 3, 64, None)
    assert src == "synthetic" and "SYNTHETIC" in caplog.text
    syn = synthetic_dermoscopy(4, 64)
    assert syn.dtype == np.uint8 and syn.std() > 10


def test_calibration_folder_skips_hidden_files(tmp_path):
    """A calibration folder copied from a macOS drive holds ._x.png resource forks: they took
    calibration slots (and warnings) as unreadable images."""
    from PIL import Image

    from egeunet.export.calibration import images_from_folder

    for i, colour in enumerate([(200, 150, 140), (120, 80, 70)]):
        Image.new("RGB", (40, 40), colour).save(tmp_path / f"x{i}.png")
        (tmp_path / f"._x{i}.png").write_bytes(b"\x00\x05\x16\x07" + bytes(100))
    imgs = images_from_folder(tmp_path, 2, 32)  # two slots: both must go to the two photos
    assert imgs.shape == (2, 32, 32, 3)
    assert sorted(tuple(int(v) for v in im[0, 0]) for im in imgs) == [(120, 80, 70), (200, 150, 140)]


def test_export_refuses_a_folder_that_holds_another_export(tmp_path):
    """Two variants in one --out would leave the first beside a manifest that is not its own."""
    (tmp_path / "egeunet_int8.tflite").write_bytes(b"an earlier export")
    (tmp_path / "manifest.json").write_text(json.dumps({"file": "egeunet_int8.tflite", "target": "tflite"}))
    with pytest.raises(ValueError, match="already holds another export .manifest.json describes 'egeunet_int8.tflite'"):
        export("onnx", out=tmp_path, num_verify=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["egeunet_int8.tflite", "manifest.json"]
    with pytest.raises(ValueError, match="min_iou must be a number, not nan"):
        export("onnx", out=tmp_path / "o", min_iou=float("nan"))


def test_manifest_and_coreml_metadata_threshold_on_logits_follows_the_probability_threshold(tmp_path):
    """on_output was 0.0 for any logits model: right only for the default threshold 0.5."""
    import math

    from egeunet.export import find_format
    from egeunet.export.manifest import build_manifest
    from egeunet.export.onnx_export import onnx_io_spec
    from egeunet.preprocess import Preprocessing

    pre = Preprocessing(threshold=0.7)
    fmt = find_format("onnx", "fp32")
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(b"x")
    for output, expected in (("logits", math.log(0.7 / 0.3)), ("probs", 0.7)):
        man = build_manifest(fmt, artifact, onnx_io_spec(256, output), pre, "0" * 64, {})
        assert man["threshold"]["on_output"] == pytest.approx(expected)
    pytest.importorskip("coremltools")
    from egeunet.export.coreml_export import coreml_metadata

    meta = coreml_metadata(pre, "logits")
    assert float(meta["egeunet.threshold"]) == pytest.approx(math.log(0.7 / 0.3))
    assert json.loads(meta["egeunet.preprocessing"])["threshold"] == 0.7  # JSON an app can parse, not a repr


@pytest.mark.parametrize("fail_on", ["manifest", "artifact"])
@pytest.mark.parametrize("as_folder", [False, True])
def test_publish_interrupted_leaves_no_manifest_for_a_file_that_is_not_there(tmp_path, monkeypatch, fail_on, as_folder):
    """Re-exporting over the same variant: whichever rename fails (or is killed), manifest.json
    never describes a file that is missing or is not the one it hashes."""
    import os

    from egeunet.export import common

    name = "egeunet_fp16.mlpackage" if as_folder else "egeunet_fp32.onnx"
    out, stage = tmp_path / "out", tmp_path / "out" / ".egeunet-export-x"
    stage.mkdir(parents=True)

    def write(path, data):
        if as_folder:
            path.mkdir()
            for i in range(3):
                (path / f"part{i}").write_bytes(data)
        else:
            path.write_bytes(data)

    write(out / name, b"old")
    (out / "manifest.json").write_text(json.dumps({"file": name, "sha256": common.sha256_of(out / name)}))
    write(stage / name, b"new")
    real = os.replace

    def failing(src, dst):
        if (fail_on == "manifest" and str(dst).endswith("manifest.json")) or \
                (fail_on == "artifact" and str(src) == str(stage / name)):
            raise OSError("interrupted")
        return real(src, dst)

    monkeypatch.setattr(common.os, "replace", failing)
    with pytest.raises(OSError, match="interrupted"):
        common.publish(stage / name, {"file": name, "sha256": common.sha256_of(stage / name)}, out)
    man = out / "manifest.json"
    if man.exists():
        described = json.loads(man.read_text())
        assert (out / described["file"]).exists()
        assert common.sha256_of(out / described["file"]) == described["sha256"]


def test_a_terminated_export_does_not_publish_even_if_its_exit_was_swallowed(tmp_path, monkeypatch):
    """The SIGTERM handler's SystemExit is dropped when the signal lands in a __del__ (seen in
    TensorFlow's, right after conversion): the export then published its file and exited 0.
    The handler's flag stops publish(): the old artifact and manifest stay as they were."""
    import signal

    from egeunet.cli import _terminate_cleanly
    from egeunet.export import common

    monkeypatch.setattr(common, "TERMINATION_REQUESTED", common.threading.Event())
    previous = signal.getsignal(signal.SIGTERM)
    try:
        _terminate_cleanly()

        class Swallowing:  # what the interpreter does with an exception raised inside __del__
            def __del__(self):
                try:
                    signal.raise_signal(signal.SIGTERM)
                except SystemExit:
                    pass

        Swallowing()
    finally:
        signal.signal(signal.SIGTERM, previous)
    out, stage = tmp_path / "out", tmp_path / "out" / ".egeunet-export-x"
    stage.mkdir(parents=True)
    (out / "egeunet_fp32.onnx").write_bytes(b"old")
    (out / "manifest.json").write_text("{}")
    (stage / "egeunet_fp32.onnx").write_bytes(b"new")
    with pytest.raises(SystemExit) as stopped:
        common.publish(stage / "egeunet_fp32.onnx", {"file": "egeunet_fp32.onnx"}, out)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert (out / "egeunet_fp32.onnx").read_bytes() == b"old" and (out / "manifest.json").read_text() == "{}"


def test_sigterm_during_export_cleans_up_its_staging_folder(tmp_path, isic_root):
    """`kill`/`timeout` send SIGTERM: the staging folder (a model file) must not stay in --out."""
    import signal
    import time

    out = tmp_path / "onnx"
    p = subprocess.Popen([sys.executable, "-m", "egeunet", "export", "--target", "tflite", "--out", str(out),
                          "--data", str(isic_root), "--num-verify", "2"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None and not any(out.glob(".egeunet-export-*/*")):
        time.sleep(0.02)
    if p.poll() is not None:
        pytest.skip("export finished before it could be interrupted")
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    assert p.returncode != 0
    assert not out.exists() or not list(out.glob(".egeunet-export-*"))


def test_export_cli_refuses_nonsense_before_loading_anything(tmp_path, capsys):
    """One line, exit 2, for what the user must fix: --out a file (was exit 1 after loading the
    model), --num-verify 0 (the message named --num-calib), --num-calib without --full-integer
    (ignored silently), a pickled .pt and a mistyped shipped name (both called 'not a PyTorch
    checkpoint')."""
    import torch

    from conftest import refusal
    from egeunet.cli import export_main

    (tmp_path / "afile").write_text("x")
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    err = refusal(export_main, ["--target", "onnx", "--out", str(tmp_path / "afile")], capsys)
    assert "--out" in err and "afile: is a file, not a folder" in err, err
    err = refusal(export_main, ["--target", "onnx", "--out", str(tmp_path / "afile" / "sub")], capsys)
    assert "is a file, not a folder" in err, err
    assert "--num-verify: must be >= 1" in refusal(export_main, ["--target", "onnx", "--num-verify", "0"], capsys)
    assert "--num-calib: must be >= 1" in refusal(
        export_main, ["--target", "tflite", "--int8", "--full-integer", "--num-calib", "0"], capsys)
    err = refusal(export_main, ["--target", "onnx", "--num-calib", "5", "--weights", "missing.safetensors"], capsys)
    assert "--num-calib apply to --full-integer" in err, err
    err = refusal(export_main, ["--target", "onnx", "--weights", str(tmp_path / "model.pt")], capsys)
    assert "model.pt: a pickled PyTorch file; egeunet loads only a .safetensors file" in err, err
    err = refusal(export_main, ["--target", "onnx", "--weights", "egeunet-xl"], capsys)
    assert "egeunet-xl: no such file, and not a shipped model (egeunet, egeunet-bn)" in err, err
    err = refusal(export_main, ["--target", "onnx", "--weights", str(tmp_path)], capsys)
    assert "a folder; expected a .safetensors file" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "model.pt"]  # nothing written


def test_calibration_folder_with_fewer_images_than_asked_is_warned_about(tmp_path, caplog):
    from PIL import Image

    from egeunet.export.calibration import images_from_folder

    for k, img in enumerate(synthetic_dermoscopy(2, 64)):
        Image.fromarray(img).save(tmp_path / f"{k}.png")
    with caplog.at_level("WARNING"):
        assert images_from_folder(tmp_path, 2, 64).shape == (2, 64, 64, 3)
    assert "fewer than" not in caplog.text  # as many as asked: no warning
    with caplog.at_level("WARNING"):
        assert images_from_folder(tmp_path, 200, 64).shape == (2, 64, 64, 3)
    assert "only 2 readable images" in caplog.text and "the 200 asked for" in caplog.text, caplog.text
