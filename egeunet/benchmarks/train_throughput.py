"""Training throughput: images/s of whole training steps (batch 8, 256x256: get the batch,
forward, deep-supervision loss, backward, AdamW) for a plain eager baseline and for what
``egeunet-train`` runs. Each variant runs in its own process (process-wide settings such as
the allocator's stay with their variant), and the processes take turns, round by round, so
the ratio is fair on a machine whose load varies.

    python -m egeunet.benchmarks.train_throughput --threads 2            # baseline vs egeunet-train
    python -m egeunet.benchmarks.train_throughput --levers [--compile]   # + each lever, cumulative

Variants (all the same mathematics: each variant's loss on one fixed batch, before any update,
is reported and must agree):

- ``reference eager``: the straightforward pipeline. The official code's layer formulation
  (LayerNorm with ``pow``/``sqrt``/division, GHPA's permutes), NCHW, every training map
  upsampled with ``F.interpolate``, foreach AdamW, and a Dataset-style batch: each sample
  decoded from its JPEG/PNG file, normalised and augmented on its own, then stacked.
- ``eager NCHW``: our model code (rsqrt LayerNorm, broadcast GHPA) on batches cut from the
  uint8 arrays decoded once and augmented as a batch in torch, otherwise plain eager.
- ``egeunet-train``: exactly what the trainer runs: ``egeunet.train.build_model_and_optimizer``
  in a process whose allocator keeps freed memory (``egeunet.host_memory.keep_freed_memory``),
  each step's batch split over processes sharing the threads (``egeunet.split_step``: with 2
  threads, 2 processes of 1 thread, half the batch each) or, with 1 thread, ``training_batch`` +
  ``training_step`` in the one process.

The table also reports each variant's minor page faults per step (the allocator lever's
mechanism: eager PyTorch with glibc's defaults faults its big buffers in again every step);
for a split step, those of its main process only.

Without ``--data`` (or the ISIC folder next to the checkout) synthetic images are written
to a temporary folder in the same layout, so anyone can run it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import statistics
import tempfile
import time
import traceback
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from egeunet.cli import _int_at_least
from egeunet.data import SegmentationFolder, channel_stats, resolve_data_root
from egeunet.evaluate import images_to_tensor
from egeunet.flat_adamw import FlatAdamW
from egeunet.host_memory import keep_freed_memory
from egeunet.model import egeunet
from egeunet.model.checkpoint import atomic_write_json
from egeunet.model.egeunet import GHPA, LayerNorm2d, interpolate_bilinear
from egeunet.model.fast_convs import use_written_out_dilated_convs
from egeunet.model.fast_norms import CompiledKernel, compile_layer_norms, group_norm_max_pool
from egeunet.model.fast_maps import use_fused_ghpa_maps
from egeunet.model.fast_resize import upsample_logits_banded_backward
from egeunet.preprocess import Preprocessing
from egeunet.split_step import SplitStep
from egeunet.train import (TrainConfig, augment, build_model_and_optimizer, deep_supervision_loss, random_affines,
                            step_processes, training_batch, training_step)


# --- the official code's layer formulation (JCruan519/EGE-UNet), same mathematics ---------

def _official_layer_norm(self, x: torch.Tensor) -> torch.Tensor:
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + self.eps)
    return self.weight[:, None, None] * x + self.bias[:, None, None]


def _official_ghpa(self, x: torch.Tensor) -> torch.Tensor:
    x = self.norm1(x)
    x1, x2, x3, x4 = torch.chunk(x, 4, dim=1)
    x1 = x1 * self.conv_xy(F.interpolate(self.params_xy, size=x1.shape[2:4], mode="bilinear", align_corners=True))
    x2 = x2.permute(0, 3, 1, 2)
    x2 = x2 * self.conv_zx(F.interpolate(self.params_zx, size=x2.shape[2:4], mode="bilinear",
                                         align_corners=True).squeeze(0)).unsqueeze(0)
    x2 = x2.permute(0, 2, 3, 1)
    x3 = x3.permute(0, 2, 1, 3)
    x3 = x3 * self.conv_zy(F.interpolate(self.params_zy, size=x3.shape[2:4], mode="bilinear",
                                         align_corners=True).squeeze(0)).unsqueeze(0)
    x3 = x3.permute(0, 2, 1, 3)
    x = torch.cat([x1, x2, x3, self.dw(x4)], dim=1)
    return self.ldw(self.norm2(x))


def _officialize(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if isinstance(m, LayerNorm2d):
            m.forward = types.MethodType(_official_layer_norm, m)
        elif isinstance(m, GHPA):
            m.forward = types.MethodType(_official_ghpa, m)
    return model


# --- data --------------------------------------------------------------------------------

def _synthetic_folder(root: Path, n: int, size: int) -> Path:
    """n random JPEG images with PNG masks and a splits.csv, the layout SegmentationFolder reads."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    rows = ["id,split"]
    for i in range(n):
        image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        cy, cx, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.1, 0.3)]
        mask = (((yy / size - cy) ** 2 + (xx / size - cx) ** 2) < r * r).astype(np.uint8) * 255
        Image.fromarray(image).save(root / "images" / f"s{i:04d}.jpg", quality=90)
        Image.fromarray(mask).save(root / "masks" / f"s{i:04d}.png")
        rows.append(f"s{i:04d},train")
    (root / "splits.csv").write_text("\n".join(rows) + "\n")
    return root


class _Data:
    """The train images as files (for the per-sample path) and as decoded uint8 arrays."""

    def __init__(self, folder: SegmentationFolder, n: int, size: int) -> None:
        self.folder, self.size = folder, size
        split = folder.load_split("train", size, limit=n)
        self.ids = split.ids
        self.images, self.masks = torch.from_numpy(split.images), torch.from_numpy(split.masks)
        mean, std = channel_stats(split.images)
        self.pre = Preprocessing(size=size, mean=mean, std=std)
        self.gen = torch.Generator().manual_seed(0)
        self.cursor = 0

    def next_indices(self, batch: int) -> torch.Tensor:
        idx = (torch.arange(batch) + self.cursor) % len(self.ids)
        self.cursor = (self.cursor + batch) % len(self.ids)
        return idx

    def per_sample_batch(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Dataset + collate: decode, normalise and augment each sample alone, then stack."""
        xs, ys = [], []
        for i in self.next_indices(batch).tolist():
            image, mask = self.folder.read_pair(self.ids[i], self.size)
            x = images_to_tensor(torch.from_numpy(image.copy())[None], self.pre)
            y = torch.from_numpy(mask).float()[None, None]
            x, y = augment(x, y, self.gen)
            xs.append(x)
            ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    def in_memory_batch(self, batch: int, memory_format=torch.contiguous_format,
                        compiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = training_batch(self.images, self.masks, self.next_indices(batch), self.pre, self.gen, compiled=compiled)
        return x.contiguous(memory_format=memory_format), y


# --- variants ----------------------------------------------------------------------------

def _variant(name: str, data: _Data, batch: int):
    """(one whole training step of variant ``name``, its network, its memory format)."""
    torch.manual_seed(0)  # every variant starts from the same weights
    if name == "egeunet-train":
        model, opt, loss_fn = build_model_and_optimizer()
        threads = torch.get_num_threads()
        processes = step_processes(TrainConfig(data="", out="", batch_size=batch), threads)
        if processes > 1:
            return _split_step(data, batch, model, opt, loss_fn, processes, threads), model, torch.channels_last
        return (lambda: training_step(model, opt, *data.in_memory_batch(batch, torch.channels_last, True), loss_fn),
                model, torch.channels_last)
    # the plain set-ups, then the levers one by one (cumulative, in LEVER_ORDER)
    levers = set(LEVER_ORDER[: LEVER_ORDER.index(name) + 1] if name in LEVER_ORDER else [])
    whole = name in COMPILED
    memory_format = torch.channels_last if "+ channels_last" in levers or whole else torch.contiguous_format
    model = egeunet().train().to(memory_format=memory_format)
    if name == "reference eager":
        _officialize(model)
    if "+ loss maps resized with a matrix backward" not in levers:
        model.upsample_loss_map = interpolate_bilinear
    if "+ GroupNorm + max-pool backward at pooled resolution" in levers:
        model.stage_norm_pool = group_norm_max_pool
    if "+ dilated depthwise conv backward written out" in levers:
        use_written_out_dilated_convs(model)
    if "+ loss-map resize backward as banded gathers" in levers:
        model.upsample_loss_map = upsample_logits_banded_backward
    if "+ GHPA weight maps as compiled kernel pairs" in levers:
        use_fused_ghpa_maps(model)
    if "+ LayerNorms as direct compiled kernels" in levers:
        compile_layer_norms(model)
    loss_fn = CompiledKernel(deep_supervision_loss, "loss") if "+ compiled loss" in levers \
        else deep_supervision_loss
    net = torch.compile(model) if whole else model
    if "+ AdamW over one flat buffer" in levers:
        opt = FlatAdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2, fused=("+ fused AdamW" in levers) or None)
    if name == "reference eager":
        return lambda: training_step(net, opt, *data.per_sample_batch(batch)), net, memory_format
    if SPLIT_LEVER in levers:
        return _split_step(data, batch, model, opt, loss_fn, 2, torch.get_num_threads()), net, memory_format
    compiled_batch = "+ batch normalisation as one compiled kernel" in levers
    return (lambda: training_step(net, opt, *data.in_memory_batch(batch, memory_format, compiled_batch), loss_fn),
            net, memory_format)


def _split_step(data: _Data, batch: int, model, opt, loss_fn, processes: int, threads: int):
    """The step as egeunet-train runs it with --processes: each batch split over ``processes``
    processes sharing ``threads`` threads (egeunet.split_step), the same draws as ``in_memory_batch``."""
    per_process = max(1, threads // processes)  # (--threads 1 with the lever rows: two processes of one)
    torch.set_num_threads(per_process)
    split = SplitStep(model, opt, loss_fn, data.images, data.masks, data.pre, processes, per_process)
    return lambda: split.step(data.next_indices(batch), random_affines(batch, data.gen))


MAIN = ["reference eager", "eager NCHW", "egeunet-train"]
SPLIT_LEVER = "+ each step's batch split over processes (= egeunet-train)"
LEVER_ORDER = ["eager NCHW", "+ channels_last", "+ fused AdamW", "+ loss maps resized with a matrix backward",
               "+ LayerNorms as direct compiled kernels", "+ compiled loss", "+ GroupNorm + max-pool backward at pooled resolution",
               "+ dilated depthwise conv backward written out", "+ loss-map resize backward as banded gathers",
               "+ GHPA weight maps as compiled kernel pairs", "+ batch normalisation as one compiled kernel",
               "+ AdamW over one flat buffer", "+ freed memory kept", SPLIT_LEVER]
COMPILED = ["channels_last, torch.compile(whole model)"]
KEEPS_FREED_MEMORY = {"egeunet-train", "+ freed memory kept", SPLIT_LEVER}  # as egeunet.train.train does


def _worker(conn, name: str, threads: int, batch: int, size: int, root: str, n_images: int, warmup: int) -> None:
    """One variant in its own process: set up when told, then run steps on request."""
    try:
        torch.set_num_threads(threads)
        if name in KEEPS_FREED_MEMORY:
            keep_freed_memory()
        conn.send(("imported",))
        conn.recv()  # set-ups (and their compiling) run one at a time, so first-step times are clean
        dataset = _Data(SegmentationFolder(root), n_images, size)
        step, net, mf = _variant(name, dataset, batch)
        # same mathematics: every variant's loss on one fixed batch, before any update
        x, y = dataset.in_memory_batch(batch)
        dataset.cursor = 0
        t0 = time.perf_counter()  # the first calls include any compilation
        first_loss = deep_supervision_loss(net(x.contiguous(memory_format=mf)), y).item()
        step()
        first_s = time.perf_counter() - t0
        for _ in range(warmup):
            step()
        conn.send(("ready", first_loss, first_s))
        while (msg := conn.recv())[0] == "run":
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            for _ in range(msg[1]):
                step()
            seconds = time.perf_counter() - t0
            conn.send(("done", seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / msg[1]))
    except Exception:  # noqa: BLE001 - reported by the parent, which names the variant
        conn.send(("error", traceback.format_exc()))


class _Variants:
    """The worker processes, addressed by variant name; ``ask`` raises a worker's error here."""

    def __init__(self, names: list[str], **kwargs) -> None:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no allocator or thread state shared
        self.conns, self.procs = {}, []
        for name in names:
            parent, child = ctx.Pipe()
            # not daemonic: a variant may start processes of its own (the split step); close() ends them
            proc = ctx.Process(target=_worker, args=(child, name), kwargs=kwargs)
            proc.start()
            self.conns[name] = parent
            self.procs.append(proc)

    def ask(self, name: str, *msg):
        if msg:
            self.conns[name].send(msg)
        reply = self.conns[name].recv()
        if reply[0] == "error":
            raise RuntimeError(f"train_throughput variant {name!r} failed:\n{reply[1]}")
        return reply[1:]

    def close(self) -> None:
        for conn in self.conns.values():
            try:
                conn.send(("stop",))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def run(threads: int = 2, steps: int = 10, warmup: int = 2, batch: int = 8, size: int = 256, rounds: int = 3,
        levers: bool = False, compiled: bool = False, data: str | None = None, n_images: int = 64) -> dict:
    names = MAIN + (LEVER_ORDER[1:] if levers else []) + (COMPILED if compiled else [])
    with tempfile.TemporaryDirectory() as tmp:
        root = resolve_data_root(data, required=False) if data is None else Path(data)
        source = str(root) if root else "synthetic"
        root = root if root else _synthetic_folder(Path(tmp) / "synthetic", n_images, size)
        variants = _Variants(names, threads=threads, batch=batch, size=size, root=str(root), n_images=n_images,
                             warmup=warmup)
        try:
            for name in names:
                variants.ask(name)  # imported
            first_losses, first_step_s = {}, {}
            for name in names:
                first_losses[name], first_step_s[name] = variants.ask(name, "setup")
            rates: dict[str, list[float]] = {name: [] for name in names}
            faults: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(rounds):  # take turns so all variants see the same machine state
                for name in names:
                    seconds, per_step = variants.ask(name, "run", steps)
                    rates[name].append(batch * steps / seconds)
                    faults[name].append(per_step)
        finally:
            variants.close()
    img_per_s = {n: statistics.median(r) for n, r in rates.items()}
    base = img_per_s["reference eager"]
    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": threads, "torch": torch.__version__},
        "data": source, "batch": batch, "size": size, "steps_per_round": steps, "rounds": rounds,
        "img_per_s": img_per_s, "rounds_img_per_s": rates,
        "page_faults_per_step": {n: statistics.median(f) for n, f in faults.items()},
        "vs_reference": {n: v / base for n, v in img_per_s.items()},
        "vs_eager_nchw": {n: v / img_per_s["eager NCHW"] for n, v in img_per_s.items()},
        "speedup": img_per_s["egeunet-train"] / base,
        # paired: each round's egeunet-train rate over the same round's reference (the two ran
        # minutes apart at most), less sensitive to drifts of the machine's speed across rounds
        "speedup_per_round": [t / r for t, r in zip(rates["egeunet-train"], rates["reference eager"])],
        "first_step_loss": first_losses, "first_step_seconds": first_step_s,
    }


def markdown(res: dict) -> str:
    lines = ["| variant | img/s | vs reference eager | vs eager NCHW | page faults per step "
             "| first step (s, incl. compiling) | loss on a fixed batch |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for n, v in res["img_per_s"].items():
        lines.append(f"| {n} | {v:.1f} | {res['vs_reference'][n]:.2f}x | {res['vs_eager_nchw'][n]:.2f}x | "
                     f"{res['page_faults_per_step'][n]:,.0f} | {res['first_step_seconds'][n]:.1f} "
                     f"| {res['first_step_loss'][n]:.6f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=_int_at_least(1), default=2)
    p.add_argument("--steps", type=_int_at_least(1), default=10, help="steps per variant per round")
    p.add_argument("--rounds", type=_int_at_least(1), default=3)
    p.add_argument("--batch", type=_int_at_least(1), default=8)
    p.add_argument("--size", type=_int_at_least(1), default=256)
    p.add_argument("--data", help="an image folder (default: the ISIC folder if present, else synthetic images)")
    p.add_argument("--levers", action="store_true", help="also each lever on its own, cumulative")
    p.add_argument("--compile", action="store_true", help="also torch.compile of the whole model (minutes)")
    p.add_argument("--json", help="write the result here")
    a = p.parse_args(argv)
    res = run(a.threads, a.steps, batch=a.batch, size=a.size, rounds=a.rounds, levers=a.levers,
              compiled=a.compile, data=a.data)
    print(markdown(res))
    paired = res["speedup_per_round"]
    print(f"egeunet-train vs reference eager: {res['speedup']:.2f}x (per round: "
          f"{', '.join(f'{r:.2f}' for r in paired)}; median {statistics.median(paired):.2f}x) "
          f"({a.threads} threads, batch {a.batch}, "
          f"data {res['data']})")
    if a.json:
        atomic_write_json(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
