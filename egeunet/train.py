"""Training with the paper's recipe: AdamW (lr 1e-3, weight decay 1e-2), cosine schedule,
batch 8, BCE + Dice on the final map plus deep supervision (weights 0.1..0.5, coarse to
fine), random horizontal / vertical flips and a rotation drawn per sample.

Changes from the official code, and why:
- the rotation angle is drawn for every sample (the official transform draws it once per
  run, so every image was rotated by the same angle);
- fixed mean/std normalisation from the training split instead of per-image min-max;
- the cosine schedule is one decay over the whole run, stepped per batch (the official
  ``CosineAnnealingLR(T_max=50)`` stepped per epoch is a wave over 300 epochs: down to 1e-5 at
  epochs 51/151/251, back up to 1e-3 at 100/200/300);
- masks are binary (nearest resize, > 127) as training targets, not bilinearly resized;
  the rotation acts on the 256x256 image (bilinear, training-mean fill);
- augmentation runs on whole batches in torch (no per-sample PIL work), on images decoded
  once into memory; the step runs channels_last with compiled LayerNorms (direct inductor
  kernels, ``egeunet.model.fast_norms``), GHPA weight maps (``fast_maps``) and loss, fused
  AdamW over one flat buffer (``egeunet.flat_adamw``), glibc keeps freed buffers instead of
  faulting them in again each step (``egeunet.host_memory``), and each step's batch is split
  over two processes of one thread (``egeunet.split_step``); the same mathematics, 2.6-2.9x the
  images/s (``python -m egeunet.benchmarks.train_throughput``);
- ``--device cuda`` replays the whole step as a CUDA graph (``egeunet.graphed_step``), with
  full float32 convolutions (TF32 off), the same mathematics again;
- the best checkpoint is chosen by Dice on the val split, never on test (the official code
  keeps the lowest val loss, on the split it also tests on).

The README's "What we changed from the official code" lists each difference with its reason.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from egeunet.data import SegmentationFolder, channel_stats
from egeunet.evaluate import _normalisation, evaluate_arrays, images_to_tensor
from egeunet.flat_adamw import FlatAdamW
from egeunet.graphed_step import GraphedTrainingStep, cuda_adamw, set_lr
from egeunet.host_memory import keep_freed_memory
from egeunet.model.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    atomic_write_json,
    file_sha256,
    load_tensors,
    read_sidecar,
    save_checkpoint,
    save_tensors,
    sidecar_path,
)
from egeunet.model.egeunet import EGEUNet, EGEUNetConfig
from egeunet.model.fast_convs import use_written_out_dilated_convs
from egeunet.model.fast_norms import (CompiledKernel, DirectKernel, KernelGroup, compile_layer_norms, group_norm_max_pool,
                                      kernel_cache_dir)
from egeunet.model.fast_maps import use_fused_ghpa_maps
from egeunet.model.fast_resize import upsample_logits_banded_backward
from egeunet.preprocess import Preprocessing
from egeunet.split_step import SplitStep

log = logging.getLogger(__name__)

DEEP_SUPERVISION_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5)  # coarse (1/32) to fine (1/2), as in the paper


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/egeunet"
    epochs: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-2
    threads: int | None = None
    # CPU: split each step's batch over this many processes, the threads shared among them
    # (egeunet.split_step; same mathematics). None: 2 where there are >= 2 threads and the
    # model's norms allow it (not BatchNorm), else 1.
    processes: int | None = None
    seed: int = 42
    resume: bool = False
    size: int = 256
    stop_after_epoch: int | None = None  # end this invocation early; the schedule still spans `epochs`
    limit_train: int | None = None  # use only the first N train images (tests, smoke runs)
    limit_val: int | None = None
    progress: bool = True
    compiled_kernels: bool = True  # compiled LayerNorms, loss and more (build_model_and_optimizer); same results
    norms: str = "paper"  # "batch": the EGE-UNet-BN variant (egeunet.model.egeunet.EGEUNetConfig.norms)
    device: str = "cpu"  # or "cuda": the step is replayed as a CUDA graph (egeunet.graphed_step)
    cuda_graphs: bool = True  # False: plain eager steps on the GPU (debugging; slower, same results)
    plot_every: int = 1  # redraw curves.png every N epochs (and after the last)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """BCE + (1 - soft Dice), Dice per sample then averaged (the official BceDiceLoss)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = (2 * (prob * t).sum(1) + smooth) / (prob.sum(1) + t.sum(1) + smooth)
    return bce + (1 - dice).mean()


def deep_supervision_loss(outputs, target: torch.Tensor) -> torch.Tensor:
    """Loss of the final map plus the weighted loss of each deep-supervision map."""
    if isinstance(outputs, torch.Tensor):
        return bce_dice_loss(outputs, target)
    aux, final = outputs
    loss = bce_dice_loss(final, target)
    for w, a in zip(DEEP_SUPERVISION_WEIGHTS, aux):
        loss = loss + w * bce_dice_loss(a, target)
    return loss


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample random flips (p=0.5 each) and rotation (p=0.5, angle uniform in [0, 360)).

    ``x``: normalised float (B, 3, H, W); ``y``: float mask (B, 1, H, W). Rotated-in corners
    are 0 in normalised space (the training mean colour) and background in the mask.
    """
    return apply_affines(x, y, random_affines(x.shape[0], gen))


def random_affines(b: int, gen: torch.Generator) -> torch.Tensor:
    """(b, 2, 3) CPU ``affine_grid`` matrices of :func:`augment`'s random flips and rotations."""
    hflip = torch.rand(b, generator=gen) < 0.5
    vflip = torch.rand(b, generator=gen) < 0.5
    rotate = torch.rand(b, generator=gen) < 0.5
    angle = torch.rand(b, generator=gen) * (2 * math.pi) * rotate
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx = torch.where(hflip, -1.0, 1.0)
    sy = torch.where(vflip, -1.0, 1.0)
    # theta maps output coords to input coords: rotation composed with the flips
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos * sy
    return theta


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, (b, c, h, w), align_corners=False)`` by broadcasting: each output
    pixel's (x, y) in [-1, 1] mapped by ``theta`` (b, 2, 3). Equal to it to float rounding and
    6x faster on CPU (1.61 -> 0.26 ms at 8 x 256 x 256, a quarter of the batch's preparation:
    its batched matrix product with an inner size of 3 is slow there)."""
    xs = (torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1  # pixel centres
    ys = (torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1
    t = theta[:, :, :, None, None]  # (b, 2, 3, 1, 1)
    return torch.stack([t[:, i, 0] * xs + t[:, i, 1] * ys[:, None] + t[:, i, 2] for i in (0, 1)], dim=-1)


def apply_affines(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp images (bilinear) and masks (nearest) by ``theta`` (b, 2, 3), zeros outside."""
    grid = affine_grid(theta, x.shape[2], x.shape[3])
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x, y


def build_model_and_optimizer(lr: float = 1e-3, weight_decay: float = 1e-2, compiled_kernels: bool = True,
                              norms: str = "paper", device: str = "cpu") -> tuple[EGEUNet, torch.optim.Optimizer, Callable]:
    """(model, optimizer, loss function) for training. Each choice is a measured lever of
    ``train_throughput --levers`` and none changes the mathematics: channels_last memory
    (oneDNN's fast convolution path; CPU only), the first stages' GroupNorm + max-pool with
    a backward at pooled resolution and the bridges' dilated depthwise convs with a
    written-out backward (CPU only), compiled LayerNorm and loss kernels, on the CPU also the
    GHPA weight maps as compiled kernels and the loss maps' resize backward as banded gathers,
    fused AdamW (on the CPU over one flat buffer, :class:`egeunet.flat_adamw.FlatAdamW`; on a GPU
    with its learning rate in a tensor, so the step can be graph-captured)."""
    model = EGEUNet(EGEUNetConfig(norms=norms))
    if device == "cpu":
        model = model.to(memory_format=torch.channels_last)
        model.stage_norm_pool = group_norm_max_pool  # GroupNorm + max-pool backward at pooled resolution
        use_written_out_dilated_convs(model, compiled_kernels)  # oneDNN's dilated depthwise backward is slow
    else:
        model = model.to(device)
    loss_fn = deep_supervision_loss
    if compiled_kernels:
        # CPU: hand-split kernels called directly; GPU: torch.compile's (the step is graph-captured)
        compile_layer_norms(model, direct=device == "cpu")
        loss_fn = CompiledKernel(deep_supervision_loss, "loss")
        if device == "cpu":  # the loss maps' resize backward as banded gathers, not dense products
            model.upsample_loss_map = upsample_logits_banded_backward
            use_fused_ghpa_maps(model)  # the GHPA blocks' 18 weight maps as compiled kernel pairs
    if device == "cpu":  # after the last .to(): the parameters move into the optimizer's flat buffer
        optimizer = FlatAdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        optimizer = cuda_adamw(list(model.parameters()), lr, weight_decay)
    return model, optimizer, loss_fn


def _normalised_nhwc(images, mean, inv_std):
    # no annotations: make_fx copies a string return annotation into the traced graph, which
    # inductor's cache key cannot pickle (every process would compile the kernel again)
    return (images.float() - mean) * inv_std  # images_to_tensor's arithmetic, left NHWC


# Eager, this takes three passes over the batch whose innermost broadcast (3 colours) does not
# vectorise, then a copy to NCHW (1.11 + 0.20 ms for 8 x 256 x 256); compiled, one pass, and its
# NCHW view is channels_last, which grid_sample reads as fast. Same values, bit for bit
# (BENCHMARKS.md: training_batch 4.7-5.4 -> 4.0-4.7 ms).
_NORMALISE = DirectKernel(_normalised_nhwc, KernelGroup("batch normalisation"))


def training_batch(images: torch.Tensor, masks: torch.Tensor, idx: torch.Tensor, pre: Preprocessing,
                   gen: torch.Generator, theta: torch.Tensor | None = None,
                   compiled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented batch from the uint8 arrays kept in memory (decoded once per run);
    ``theta`` (drawn by :func:`random_affines`) instead of drawing from ``gen`` here.
    ``compiled``: on CPU, the normalisation as one compiled kernel (``--no-compile``: eager)."""
    if compiled and images.device.type == "cpu":
        x = _NORMALISE(images[idx], *_normalisation(pre, images.device)).permute(0, 3, 1, 2)
    else:
        x = images_to_tensor(images[idx], pre)
    y = masks[idx].float()[:, None]
    x, y = apply_affines(x, y, random_affines(len(idx), gen) if theta is None else theta)
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def training_step(model: EGEUNet, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: Callable = deep_supervision_loss) -> float:
    """Forward, deep-supervision loss, backward, optimizer step; returns the loss."""
    return _eager_step(model, optimizer, x, y, loss_fn).item()


def _eager_step(model, optimizer, x, y, loss_fn) -> torch.Tensor:
    loss = loss_fn(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def cosine_lr(step: int, total: int, lr: float, min_lr: float) -> float:
    """The rate of ``step`` (0-based) of ``total``: ``lr`` at step 0, reaching ``min_lr`` at
    ``total``, one step after the last one taken (PyTorch's ``CosineAnnealingLR(T_max=total)``
    convention; the shipped weights were trained with it, so it stays)."""
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def _save_train_state(path: Path, optimizer: torch.optim.Optimizer, epoch: int, best: float,
                      weights: Path) -> None:
    """The optimizer's moments, the epoch and the best val Dice, tied to the ``weights`` file
    saved with them by its sha256 (the epoch alone cannot tell another run's state at the same
    epoch, which resumed with the wrong moments without a word)."""
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in optimizer.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"{idx}.{k}"] = torch.as_tensor(v)
    tensors["_epoch"] = torch.tensor(epoch)
    tensors["_best"] = torch.tensor(best, dtype=torch.float64)
    tensors["_weights_sha256"] = torch.frombuffer(bytearray.fromhex(file_sha256(weights)), dtype=torch.uint8)
    save_tensors(path, tensors)


def _read_train_state(path: Path) -> tuple[dict[int, dict[str, torch.Tensor]], int, float, str | None]:
    """(optimizer state by parameter index, epoch, best val Dice, sha256 of the weights saved with
    it: None in states written before 2026-11-26) of what :func:`_save_train_state` wrote; any
    other file (a copy of the weights, a damaged one) is named, not a KeyError."""
    tensors = load_tensors(path)
    state: dict[int, dict[str, torch.Tensor]] = {}
    try:
        for key, v in tensors.items():
            if key.startswith("_"):
                continue
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = v
        saved_for = tensors.get("_weights_sha256")
        return (state, int(tensors["_epoch"]), float(tensors["_best"]),
                None if saved_for is None else bytes(saved_for.tolist()).hex())
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not an optimizer state this trainer wrote ({e.__class__.__name__}: {e}); "
                              "cannot resume") from None


def _load_train_state(path: Path, optimizer: torch.optim.Optimizer) -> tuple[int, float, str | None]:
    """Loads the moments into ``optimizer``; returns (epoch, best val Dice, sha256 of the weights
    the state was saved with or None)."""
    state, epoch, best, saved_for = _read_train_state(path)
    # Moments must have their parameter's strides (channels_last convs): the fused AdamW
    # kernel walks parameter, gradient and moments as flat arrays in step.
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for idx, st in state.items():
        for name, v in st.items():
            if idx < len(params) and v.shape == params[idx].shape:
                st[name] = torch.empty_like(params[idx]).copy_(v)
    sd = optimizer.state_dict()
    sd["state"] = state
    optimizer.load_state_dict(sd)
    return epoch, best, saved_for


def _plot_curves(log_rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in log_rows]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(ep, [r["train_loss"] for r in log_rows], color="tab:red", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss (BCE+Dice, deep supervision)", color="tab:red")
    ax2 = ax1.twinx()
    ax2.plot(ep, [r["val_dice"] for r in log_rows], color="tab:blue", label="val Dice (pooled)")
    ax2.set_ylabel("val Dice (pooled)", color="tab:blue")
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def train(cfg: TrainConfig) -> dict:
    """Train, validating on the val split every epoch; returns a summary dict.

    On CPU this sets glibc's allocator to keep freed memory (``egeunet.host_memory``): a
    process-wide setting that stays after ``train`` returns (the process keeps its peak memory).
    With ``processes`` > 1 (the default with >= 2 threads) each step is split over helper
    processes started with multiprocessing's "spawn" (``egeunet.split_step``): a script that
    calls ``train`` must do so under ``if __name__ == "__main__":``."""
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(f"epochs and batch size must be >= 1 (got {cfg.epochs}, {cfg.batch_size})")
    # 0 would silently mean "no limit" (or, for stop_after_epoch, end before the first epoch)
    for name in ("threads", "processes", "stop_after_epoch", "limit_train", "limit_val", "plot_every"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, not {getattr(cfg, name)}")
    # AdamW refuses a negative or NaN rate only once the data is decoded (and the output folder
    # made), without naming the flag; an infinite rate or weight decay trains NaN weights without a
    # word.
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"--lr must be a positive number, not {cfg.lr}")
    if cfg.lr < cfg.min_lr:  # a small fine-tuning rate: hold it rather than "decay" upwards to min_lr
        log.info("--lr %g is below the schedule's final rate %g: training at a constant %g", cfg.lr, cfg.min_lr, cfg.lr)
        cfg = replace(cfg, min_lr=cfg.lr)
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise ValueError(f"--weight-decay must be a number >= 0, not {cfg.weight_decay}")
    # each epoch seeds its generator with seed * 100_003 + epoch, which must fit in 64 bits
    if not abs(cfg.seed) < 2**32:
        raise ValueError(f"--seed must lie between -{2**32 - 1} and {2**32 - 1}, not {cfg.seed}")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    last_path, best_path, state_path = out / "last.safetensors", out / "best.safetensors", out / "last.state.safetensors"
    log_csv = out / "log.csv"
    last_epoch = min(cfg.epochs, cfg.stop_after_epoch or cfg.epochs)
    if cfg.resume:
        _check_work_left(out, state_path, last_epoch, cfg.epochs)
    else:
        _check_no_earlier_run(out, last_path, best_path)
    if cfg.processes is not None and cfg.processes > 1:
        if cfg.device != "cpu":
            raise ValueError(f"--processes {cfg.processes}: the step is split over processes on the CPU only")
        if cfg.norms == "batch":
            raise ValueError(f"--processes {cfg.processes}: EGE-UNet-BN's BatchNorms normalise over the whole "
                             "batch, so its step cannot be split (use --processes 1)")
        if cfg.processes > cfg.batch_size:
            raise ValueError(f"--processes {cfg.processes} is more than --batch-size {cfg.batch_size}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    threads = torch.get_num_threads()
    processes = step_processes(cfg, threads)
    if processes > threads:
        raise ValueError(f"--processes {processes} is more than the {threads} threads (--threads) to share among them")
    cuda = _setup_device(cfg.device)
    if not cuda:
        keep_freed_memory()  # no page faults on each step's buffers (egeunet.host_memory)

    folder = SegmentationFolder(cfg.data)
    train_split = folder.load_split("train", cfg.size, cfg.limit_train, progress=cfg.progress)
    val_split = folder.load_split("val", cfg.size, cfg.limit_val, progress=cfg.progress)
    if len(train_split) == 0 or len(val_split) == 0:
        raise ValueError(f"{cfg.data}: the train and val splits must not be empty")
    out.mkdir(parents=True, exist_ok=True)  # only now: a run that cannot start leaves no empty folder

    torch.manual_seed(cfg.seed)
    model, optimizer, loss_fn = build_model_and_optimizer(cfg.lr, cfg.weight_decay, cfg.compiled_kernels, cfg.norms,
                                                          cfg.device)
    if cfg.compiled_kernels and not cuda:
        log.info("[train] the first step compiles the training kernels: ~2 min on a cold cache, seconds once "
                 "they are kept in %s", kernel_cache_dir())
    start_epoch, best_dice, log_rows = 0, -1.0, []
    provenance = {"data_root": str(Path(cfg.data).resolve()), "data_fingerprint": folder.fingerprint(),
                  "n_train": len(train_split), "n_val": len(val_split)}
    if cfg.resume:
        meta = read_sidecar(last_path)
        try:  # a damaged or foreign sidecar: named, as load_checkpoint names it
            pre = Preprocessing.from_dict(meta["preprocessing"])
            _check_resume_matches(last_path, meta, cfg, provenance)
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{sidecar_path(last_path)}: bad config or preprocessing entry "
                                  f"({e.__class__.__name__}: {e})") from None
        try:
            model.load_state_dict(load_tensors(last_path))
        except RuntimeError as e:  # missing / unexpected keys or shapes: not this model's weights
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"{last_path}: its weights do not fit the model its sidecar describes ({first})") from None
        if "weights_sha256" in meta and file_sha256(last_path) != meta["weights_sha256"]:
            raise CheckpointError(f"{last_path}: its weights do not match its sidecar's sha256 (a save that was "
                                  "interrupted?); cannot resume exactly")
        start_epoch, best_dice, state_for = _load_train_state(state_path, optimizer)
        if meta.get("epoch", start_epoch) != start_epoch:  # a save cut short between the two files
            raise CheckpointError(f"{out}: last.safetensors is from epoch {meta['epoch']} but last.state.safetensors "
                                  f"from epoch {start_epoch} (a save that was interrupted?); cannot resume exactly")
        if state_for is not None and state_for != file_sha256(last_path):  # e.g. another run's, same epoch
            raise CheckpointError(f"{state_path}: written for other weights than {last_path.name} (another run's "
                                  "state?); cannot resume exactly")
        if log_csv.is_file():
            log_rows = [r for r in _read_log(log_csv) if r["epoch"] <= start_epoch]
        log.info("[train] resuming after epoch %d (best val Dice %.4f)", start_epoch, best_dice)
    else:
        mean, std = channel_stats(train_split.images)
        pre = Preprocessing(size=cfg.size, mean=mean, std=std)

    images = torch.from_numpy(train_split.images).to(cfg.device)
    masks = torch.from_numpy(train_split.masks).to(cfg.device)
    steps_per_epoch = math.ceil(len(train_split) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    gen = torch.Generator()
    graphed: GraphedTrainingStep | None = None
    eval_batch = 64 if cuda else 16
    summary: dict = {}
    split: SplitStep | None = None
    if processes > 1:
        try:
            split = SplitStep(model, optimizer, loss_fn, images, masks, pre, processes, threads // processes,
                              cfg.compiled_kernels, cfg.norms)
        except (RuntimeError, OSError) as e:  # e.g. a container's small /dev/shm cannot hold the images
            lines = str(e).strip().splitlines() or [type(e).__name__]
            cause = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"  # a helper's: its last line
            log.warning("[train] could not start the split step's helper processes (%s); training in one "
                        "process of %d threads instead (same results, ~10 %% slower; in a container, a larger "
                        "shared memory such as docker run --shm-size=1g allows the split)", cause, threads)
        else:
            log.info("[train] each step's batch is split over %d processes of %d thread(s) (--processes 1: one "
                     "process of %d threads; same mathematics)", processes, threads // processes, threads)
            torch.set_num_threads(threads // processes)
    try:
        for epoch in range(start_epoch + 1, last_epoch + 1):
            # Seeding per epoch makes a resumed run draw the same batches as an uninterrupted one.
            gen.manual_seed(cfg.seed * 100_003 + epoch)
            order = torch.randperm(len(train_split), generator=gen)
            batches = [order[b * cfg.batch_size:(b + 1) * cfg.batch_size] for b in range(steps_per_epoch)]
            # The same draws from `gen`, in the same order, as training_batch would make; on a GPU
            # they go over once per epoch (a per-step host-to-device copy would stall the loop).
            thetas = [random_affines(len(idx), gen) for idx in batches]
            if cuda:
                thetas = list(torch.cat(thetas).to(cfg.device).split([len(i) for i in batches]))
                batches = list(order.to(cfg.device).split([len(i) for i in batches]))
            model.train()
            t0 = time.perf_counter()
            running, seen = torch.zeros((), device=cfg.device), 0
            bar = _progress(steps_per_epoch, f"epoch {epoch}/{cfg.epochs}", cfg.progress)
            for b, (idx, theta) in enumerate(zip(batches, thetas)):
                set_lr(optimizer, cosine_lr((epoch - 1) * steps_per_epoch + b, total_steps, cfg.lr, cfg.min_lr))
                if split is not None:  # each process builds its own share of the batch
                    loss = split.step(idx, theta)
                else:
                    x, y = training_batch(images, masks, idx, pre, gen, theta, cfg.compiled_kernels)
                    if not (cuda and cfg.cuda_graphs):
                        loss = _eager_step(model, optimizer, x, y, loss_fn)
                    else:
                        if graphed is None:
                            graphed = GraphedTrainingStep(model, optimizer, loss_fn, tuple(x.shape), tuple(y.shape))
                        loss = graphed(x, y)  # replayed; a smaller last batch runs eagerly
                running += loss * len(idx)
                seen += len(idx)
                if bar is not None:
                    if not cuda:  # reading the loss each step would stall a GPU
                        bar.set_postfix(loss=f"{running.item() / seen:.4f}", best_val_dice=f"{max(best_dice, 0):.4f}")
                    bar.update(1)
            train_loss = running.item() / seen
            if split is not None:  # validation runs in this process alone: on every thread
                torch.set_num_threads(threads)
            metrics = evaluate_arrays(model, val_split, pre, batch_size=eval_batch)
            if split is not None:
                torch.set_num_threads(threads // processes)
            val_dice = metrics["pooled"]["dice"]
            seconds = time.perf_counter() - t0
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.4f}", val_dice=f"{val_dice:.4f}")
                bar.close()
            row = {"epoch": epoch, "lr": float(optimizer.param_groups[0]["lr"]), "train_loss": train_loss,
                   "val_dice": val_dice, "val_iou": metrics["pooled"]["iou"], "seconds": seconds,
                   "train_img_per_s": seen / seconds}
            log_rows.append(row)
            meta = {"epoch": epoch, "val": metrics, "train_config": asdict(cfg), "data": provenance,
                    "torch_version": torch.__version__}
            # The log first: a resume keeps only its rows up to the saved state's epoch, so a row
            # written ahead of an interrupted save is dropped, while one written after the state
            # would be lost for good (the resumed run starts at the next epoch).
            _write_log(log_csv, log_rows)
            if val_dice > best_dice:
                best_dice = val_dice
                save_checkpoint(best_path, model, pre, **meta)
            save_checkpoint(last_path, model, pre, **meta)
            _save_train_state(state_path, optimizer, epoch, best_dice, last_path)
            if epoch % max(cfg.plot_every, 1) == 0 or epoch == last_epoch:
                name = "EGE-UNet-BN" if cfg.norms == "batch" else "EGE-UNet"
                _plot_curves(log_rows, out / "curves.png", f"{name} training on {folder.root.resolve().name}")
            log.info("[train] epoch %d loss %.4f val dice %.4f (best %.4f) %.0fs", epoch, train_loss, val_dice, best_dice, seconds)
            summary = {"epoch": epoch, "train_loss": train_loss, "val_dice": val_dice, "best_val_dice": best_dice}
    finally:
        if split is not None:
            split.close()
            torch.set_num_threads(threads)  # the caller's process keeps its thread count
    summary.update({"best": str(best_path), "last": str(last_path), "log": str(log_csv)})
    atomic_write_json(out / "summary.json", summary)
    return summary


def _check_work_left(out: Path, state_path: Path, last_epoch: int, epochs: int) -> None:
    """Before any work: a resumed run must have a saved state and an epoch left to train up to
    ``last_epoch``; otherwise the loop would not run and summary.json would lose its figures."""
    if not (out / "last.safetensors").is_file() or not state_path.is_file():
        raise CheckpointError(f"{out}: nothing to resume (no last.safetensors / last.state.safetensors)")
    done = _read_train_state(state_path)[1]
    if done >= epochs:
        where = f"already finished epoch {done} of {epochs}" if done == epochs else \
            f"is at epoch {done}, past --epochs {epochs}"
        raise ValueError(f"nothing to do: the run in {out} {where}")
    if done >= last_epoch:
        raise ValueError(f"nothing to do: the run in {out} is at epoch {done} already; "
                         f"--stop-after-epoch {last_epoch} must be later")


# Settings that define the run's mathematics (schedule, batches, augmentation draws, data, best-by
# measure): a resumed run with another value would silently be a different run.
_RESUME_MUST_MATCH = ("lr", "min_lr", "weight_decay", "batch_size", "seed", "size", "limit_train", "limit_val")


def step_processes(cfg: TrainConfig, threads: int) -> int:
    """How many processes share each step: ``cfg.processes``, or by default 2 on a CPU with
    >= 2 threads for the paper's norms (BatchNorm's batch statistics forbid splitting) and
    batches of >= 2 (measured: ~1.1x whole steps on 2 cores, egeunet.split_step)."""
    if cfg.processes is not None:
        return cfg.processes
    return 2 if cfg.device == "cpu" and cfg.norms == "paper" and threads >= 2 and cfg.batch_size >= 2 else 1


def _check_resume_matches(last_path: Path, meta: dict, cfg: TrainConfig, provenance: dict) -> None:
    """Refuse to resume a run with settings, model or data other than its own (they would mix
    silently); ``provenance`` is this session's data record, as the sidecar stores it."""
    saved = meta.get("train_config") or {}
    now = asdict(cfg)
    changed = [f"--{k.replace('_', '-')} {saved[k]} (now {now[k]})" for k in _RESUME_MUST_MATCH
               if k in saved and saved[k] != now[k]]
    norms = meta["config"].get("norms", "paper")  # in the model config: older sidecars lack train_config
    if norms != cfg.norms:
        changed.append(f"--norms {norms} (now {cfg.norms})")
    data = meta.get("data") or {}
    for key in ("data_fingerprint", "n_train", "n_val"):
        if data.get(key) not in (None, provenance[key]):
            old, new = data[key], provenance[key]
            changed.append(f"data fingerprint {old[:12]}... (now {new[:12]}...)" if key == "data_fingerprint"
                           else f"{key} {old} (now {new})")
    if changed:
        raise CheckpointError(f"{last_path.parent}: the run was trained with " + ", ".join(changed)
                              + "; resume with the run's own settings and data (or start a new run in another --out)")
    if "epochs" in saved and saved["epochs"] != cfg.epochs:
        log.warning("[train] resuming with --epochs %d (its last session used %d): the cosine schedule "
                    "changes from here on, so this is not the run an uninterrupted --epochs %d would give",
                    cfg.epochs, saved["epochs"], cfg.epochs)


def _check_no_earlier_run(out: Path, last_path: Path, best_path: Path) -> None:
    """Before any work: a new run (no --resume) must not overwrite the checkpoints of an earlier
    run in the same folder (its first epoch would replace best.safetensors and last.safetensors)."""
    found = [p.name for p in (last_path, best_path) if p.is_file()]
    if found:
        raise ValueError(f"--out {out} already holds a training run ({', '.join(found)}): continue it with "
                         f"--resume, or give another --out (or remove that folder) to start a new run")


def _setup_device(device: str) -> bool:
    """True for a CUDA device (made current, float32 settings applied); a clear error for a
    device that is not there."""
    if device == "cpu":
        return False
    if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this PyTorch ({torch.__version__}) sees no CUDA GPU")
    index = torch.device(device).index
    if index is not None:
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
        torch.cuda.set_device(index)  # graph capture and its side stream use the current device
    torch.backends.cudnn.benchmark = True  # picks conv algorithms during the warm-up, before capture
    torch.backends.cudnn.allow_tf32 = False  # full float32 convolutions: the CPU run's mathematics
    torch.backends.cuda.matmul.allow_tf32 = False
    return True


def _read_log(path: Path) -> list[dict]:
    """The rows of a run's log.csv (what :func:`_write_log` wrote); a damaged file is named."""
    with open(path, newline="") as f:
        try:
            return [{k: float(v) if k != "epoch" else int(v) for k, v in r.items()} for r in csv.DictReader(f)]
        except (ValueError, TypeError) as e:  # a cell that is no number, or a short row (None)
            raise CheckpointError(f"{path}: not a training log this trainer wrote ({e}); move it away to resume "
                                  "without the earlier rows") from None


def _write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True)


__all__ = ["TrainConfig", "train", "bce_dice_loss", "deep_supervision_loss", "augment", "cosine_lr"]
