"""Checkpoints: weights as safetensors plus a JSON sidecar (config, epoch, metrics,
normalisation, data provenance). Loading never unpickles anything.

``foo.safetensors`` has its sidecar at ``foo.json``. Both are written atomically
(temporary file, then rename) so an interrupted save never leaves a half-written pair.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from egeunet.model.egeunet import EGEUNet, EGEUNetConfig
from egeunet.preprocess import Preprocessing

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent / "weights"
PRETRAINED = PRETRAINED_DIR / "egeunet_isic2018.safetensors"
# Shipped checkpoints by name: wherever a weights path is taken, these names work too.
SHIPPED = {
    "egeunet": PRETRAINED,  # EGE-UNet as published: the default
    "egeunet-bn": PRETRAINED_DIR / "egeunet_bn_isic2018.safetensors",  # the BatchNorm variant (issue #6)
}


def resolve_weights(path: str | os.PathLike | None) -> Path:
    """A checkpoint path, a shipped name ("egeunet", "egeunet-bn") or None (the default)."""
    if path is None:
        return PRETRAINED
    return SHIPPED.get(str(path), Path(path))


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file."""


def sidecar_path(weights: str | os.PathLike) -> Path:
    return Path(weights).with_suffix(".json")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; published files get normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        return load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None


def save_checkpoint(path: str | os.PathLike, model: EGEUNet, pre: Preprocessing, **meta) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar; returns the weights path."""
    path = Path(path)
    if path.suffix != ".safetensors":  # load_checkpoint (and open_runtime) would refuse the file
        raise CheckpointError(f"{path}: a checkpoint is written as a .safetensors file (its sidecar beside it "
                              f"as {path.with_suffix('.json').name}), not {path.suffix or 'a name without suffix'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(path, model.state_dict())
    sidecar = {
        "format_version": FORMAT_VERSION,
        "architecture": "EGEUNet",
        "config": asdict(model.config),
        "preprocessing": pre.to_dict(),
        "weights_sha256": file_sha256(path),
        **meta,
    }
    atomic_write_json(sidecar_path(path), sidecar)
    return path


def read_sidecar(path: str | os.PathLike) -> dict:
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{side}: missing JSON sidecar next to {Path(path).name} "
                              "(it holds the model config and normalisation)")
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{side}: not valid JSON ({e})") from None
    for key in ("config", "preprocessing"):
        if key not in meta:
            raise CheckpointError(f"{side}: no {key!r} entry")
    return meta


def _check_weights_path(path: Path) -> None:
    """Name the real problem before the sidecar is looked for: a missing file, or a file of
    another kind (an exported .onnx / .tflite is no checkpoint)."""
    expected = f"a .safetensors file (with its .json sidecar) or a shipped model: {', '.join(SHIPPED)}"
    if path.suffix in (".pt", ".pth", ".ckpt", ".pkl"):  # a PyTorch checkpoint, but pickled: loading one runs code
        raise CheckpointError(f"{path}: a pickled PyTorch file; egeunet loads only {expected} (save the state "
                              "dict with egeunet.model.checkpoint.save_checkpoint)")
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder; expected {expected}")
    if not path.suffix and not path.exists():  # a mistyped shipped name reads best as one
        raise CheckpointError(f"{path}: no such file, and not a shipped model ({', '.join(SHIPPED)})")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: not a PyTorch checkpoint; expected {expected}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")


def load_checkpoint(path: str | os.PathLike | None = None) -> tuple[EGEUNet, Preprocessing, dict]:
    """(model in eval mode, its preprocessing contract, sidecar metadata). ``None`` = shipped
    weights; "egeunet-bn" the shipped EGE-UNet-BN (see :data:`SHIPPED`)."""
    path = resolve_weights(path)
    _check_weights_path(path)
    meta = read_sidecar(path)
    try:
        config = EGEUNetConfig(**meta["config"])
        pre = Preprocessing.from_dict(meta["preprocessing"])
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{sidecar_path(path)}: bad config or preprocessing entry ({e})") from None
    model = EGEUNet(config)
    state = load_tensors(path)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        first = str(e).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{path}: weights do not fit the config in {sidecar_path(path).name} ({first})") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the config in {sidecar_path(path).name} "
                              f"(missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: {unexpected[:3]})")
    actual = file_sha256(path)
    recorded = meta.get("weights_sha256")
    if recorded and recorded != actual:  # weights edited or swapped after saving: legitimate, but say so
        log.warning("[checkpoint] %s: its sidecar %s was written for other weights (sha256 %s…, the file's is "
                    "%s…): the config and normalisation it gives may not be these weights'", path,
                    sidecar_path(path).name, recorded[:12], actual[:12])
    meta["weights_sha256"] = actual
    return model.eval(), pre, meta
