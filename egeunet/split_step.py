"""The CPU training step with its batch split over processes (``egeunet-train --processes``).

Why: a training step of this small network is ~25 ms of fixed cost per step (Python, autograd,
dispatch, oneDNN's setup per call: the same step on 32x32 images still takes ~28 ms) plus
memory-bound passes over the feature maps. With two threads in one process only the second
part is shared by the cores; the fixed part runs on one core while the other waits. Two
processes with one thread and half the batch each run both parts on both cores: on the
2-core development machine whole steps were ~10 % faster, gradient exchange included
(``docs/experiments/2026-11-27/split_step.py``; BENCHMARKS.md).

Same mathematics: the loss (``egeunet.train.deep_supervision_loss``) is a mean over samples
(binary cross-entropy's mean over all pixels is the mean of the per-sample means, as every
sample has as many pixels; soft Dice is averaged per sample), so the batch's loss is the
sample-weighted mean of the shares' losses and its gradient the same weighted mean of the
shares' gradients. Each share is built from the same samples with the same augmentation draws
as the whole batch (``training_batch`` treats samples independently). Only the float sums run
in another order, as with another thread count. BatchNorm (EGE-UNet-BN) normalises over the
batch, so it is never split.

How: the parameters live in one flat shared-memory buffer (:class:`egeunet.flat_adamw.FlatAdamW`),
which every helper process's model views. Per step the main process sends each helper its
samples' indices and affine matrices through a pipe (a few hundred bytes), runs its own share,
waits for the helpers' losses, adds their gradients (each helper's own shared buffer) into its
own, weighted by share, and takes the one AdamW step, which the helpers see at once through the
shared weights. The training images are shared too (``share_memory_``), not copied.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
import weakref

import torch

from egeunet.flat_adamw import FlatAdamW
from egeunet.preprocess import Preprocessing


class HelperProcessError(RuntimeError):
    """A helper process of the split training step failed or ended."""


def _share_loss(model, optimizer: FlatAdamW, loss_fn, images, masks, pre, idx, theta, compiled: bool) -> float:
    """Forward and backward of one share of the batch (every process's part of a step): its
    loss, its gradient left in ``optimizer.flat_gradients``."""
    from egeunet.train import training_batch  # here: egeunet.train imports this module

    x, y = training_batch(images, masks, idx, pre, None, theta, compiled)
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    return loss.item()


def _helper(conn, flat: torch.Tensor, grad: torch.Tensor, images: torch.Tensor, masks: torch.Tensor,
            pre: Preprocessing, threads: int, compiled: bool, norms: str) -> None:
    """A helper process: the same model on the shared weights; per message, forward and backward
    of its share of the batch, its gradient left in ``grad``, its loss sent back."""
    # Ctrl-C reaches the whole process group: the main process decides, and ends this one
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from egeunet.host_memory import keep_freed_memory
        from egeunet.train import build_model_and_optimizer

        torch.set_num_threads(threads)
        keep_freed_memory()
        model, optimizer, loss_fn = build_model_and_optimizer(compiled_kernels=compiled, norms=norms)
        optimizer.view_buffers(flat, grad)
        model.train()
        conn.send(("ready",))
        while (msg := conn.recv()) is not None:
            idx, theta = msg
            loss = _share_loss(model, optimizer, loss_fn, images, masks, pre, torch.as_tensor(idx),
                               torch.from_numpy(theta), compiled)
            conn.send(("loss", loss))
    except EOFError:  # the main process ended: so does this one
        pass
    except Exception:  # noqa: BLE001 - reported by the main process, which raises it
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass


def _end_helpers(helpers: list) -> None:
    for proc, conn, _ in helpers:
        try:
            conn.send(None)
        except OSError:
            pass
    for proc, conn, _ in helpers:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
        conn.close()
    helpers.clear()


class SplitStep:
    """``step(idx, theta)``: one training step (forward, loss, backward, AdamW) of the batch
    ``idx`` with affine draws ``theta``, split over ``processes`` processes of ``threads``
    threads each; returns the batch's loss. The calling process is the first of them and must
    already run with ``threads`` threads. ``close()`` ends the helpers (also at exit).

    The helpers are started with multiprocessing's "spawn": a script that makes a split step (or
    calls ``egeunet.train.train`` with it) must do so under ``if __name__ == "__main__":``, as
    for any spawned process."""

    def __init__(self, model: torch.nn.Module, optimizer: FlatAdamW, loss_fn, images: torch.Tensor,
                 masks: torch.Tensor, pre: Preprocessing, processes: int, threads: int, compiled: bool = True,
                 norms: str = "paper") -> None:
        if not isinstance(optimizer, FlatAdamW):
            raise TypeError("a split step needs the CPU trainer's FlatAdamW (its flat buffers are shared)")
        if norms == "batch":
            raise ValueError("EGE-UNet-BN's BatchNorms normalise over the whole batch: its step cannot be split")
        if processes < 2:
            raise ValueError(f"a split step needs at least 2 processes, not {processes}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.images, self.masks, self.pre, self.compiled = images, masks, pre, compiled
        # in place: the parameters' views and the images stay valid, now in shared memory
        optimizer.flat_parameters.share_memory_()
        images.share_memory_()
        masks.share_memory_()
        ctx = multiprocessing.get_context("spawn")  # fork would copy the parent's OpenMP thread state
        self.helpers: list = []
        # ends the helpers when this object goes or the interpreter exits, if close() was not called
        self._finalizer = weakref.finalize(self, _end_helpers, self.helpers)
        try:
            for _ in range(processes - 1):
                grad = torch.zeros_like(optimizer.flat_gradients).share_memory_()
                conn, child = ctx.Pipe()
                proc = ctx.Process(target=_helper, args=(child, optimizer.flat_parameters, grad, images, masks, pre,
                                                         threads, compiled, norms), daemon=True)
                proc.start()
                child.close()  # so that a helper's end is an EOF here, not a hang
                self.helpers.append((proc, conn, grad))
            for h in self.helpers:
                self._receive(h, "ready")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ended(proc) -> HelperProcessError:
        proc.join(timeout=5)
        return HelperProcessError(f"a training helper process (pid {proc.pid}) ended unexpectedly "
                                  f"(exit code {proc.exitcode})")

    def _receive(self, helper, expected: str):
        proc, conn, _ = helper
        try:
            reply = conn.recv()
        except (EOFError, OSError):
            raise self._ended(proc) from None
        if reply[0] == "error":
            raise HelperProcessError(f"a training helper process (pid {proc.pid}) failed:\n{reply[1]}")
        if reply[0] != expected:
            raise HelperProcessError(f"a training helper process sent {reply[0]!r}, expected {expected!r}")
        return reply[1:]

    def step(self, idx: torch.Tensor, theta: torch.Tensor) -> float:
        n = len(idx)
        shares = list(zip(torch.tensor_split(idx, len(self.helpers) + 1), torch.tensor_split(theta, len(self.helpers) + 1)))
        busy = []
        for h, (i, t) in zip(self.helpers, shares[1:]):
            if len(i):
                try:
                    h[1].send((i.tolist(), t.numpy()))
                except OSError:  # a broken pipe: the helper is gone
                    raise self._ended(h[0]) from None
                busy.append((h, len(i)))
        own_idx, own_theta = shares[0]
        total = _share_loss(self.model, self.optimizer, self.loss_fn, self.images, self.masks, self.pre, own_idx,
                            own_theta, self.compiled) * len(own_idx)
        grad = self.optimizer.flat_gradients
        grad.mul_(len(own_idx) / n)
        for h, k in busy:
            total += self._receive(h, "loss")[0] * k
            grad.add_(h[2], alpha=k / n)
        self.optimizer.step()
        return total / n

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> SplitStep:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
