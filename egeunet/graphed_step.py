"""One training step captured as a CUDA graph and replayed (``egeunet-train --device cuda``).

At batch 8 this 53k-parameter network is launch-bound on a GPU: a step is some 1,500 tiny
kernels, and eager PyTorch spends more CPU time launching each than the GPU spends running
it. Capturing forward + loss + backward + AdamW once and replaying the graph removes that
per-kernel CPU cost. The mathematics is the trainer's own (``training_step``): the same
model, loss and fused AdamW, fed through fixed input buffers.

What capture needs, and why it is arranged so:
- the learning rate lives in a GPU tensor that the schedule fills before each replay (a
  Python float would be baked into the graph);
- capture must be preceded by a few eager warm-up steps on a side stream (PyTorch's
  documented recipe); they change weights, AdamW moments and BatchNorm statistics, so all
  are snapshotted first and copied back afterwards, in place (the graph's addresses stay valid);
- only batches of the captured size replay; a batch of another size (an epoch's smaller
  last one) runs eagerly (:meth:`GraphedTrainingStep.eager`), on the same parameters and
  gradient buffers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def cuda_adamw(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """Fused AdamW whose step and learning rate live on the GPU, so it can be captured."""
    return torch.optim.AdamW(params, lr=torch.tensor(lr, device=params[0].device), weight_decay=weight_decay,
                             fused=True, capturable=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate, in place when it is a tensor (a captured graph reads it)."""
    for g in optimizer.param_groups:
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(lr)
        else:
            g["lr"] = lr


class GraphedTrainingStep:
    """``step(x, y)`` = copy the batch in, replay the captured step, return the loss tensor
    (other batch shapes: one eager step)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
                 x_shape: tuple[int, ...], y_shape: tuple[int, ...], warmup_steps: int = 3) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA-graph training steps need a CUDA device")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        device = next(model.parameters()).device
        self.x = torch.zeros(x_shape, device=device)
        self.y = torch.zeros(y_shape, device=device)
        # The warm-up steps below really train (on zeros); undo them after the capture:
        # parameters, AdamW moments and buffers (EGE-UNet-BN's BatchNorm running statistics).
        params = [p for g in optimizer.param_groups for p in g["params"]]
        saved_params = [p.detach().clone() for p in params]
        saved_buffers = [(b, b.detach().clone()) for b in model.buffers()]
        saved_state = {id(p): {k: v.clone() for k, v in optimizer.state[p].items() if isinstance(v, torch.Tensor)}
                       for p in params if p in optimizer.state}

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup_steps):
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(self.x), self.y).backward()
                optimizer.step()
        torch.cuda.current_stream().wait_stream(side)

        optimizer.zero_grad(set_to_none=True)  # gradients are then allocated inside the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            loss = loss_fn(model(self.x), self.y)
            loss.backward()
            optimizer.step()
        # Keep only the loss's memory, not its autograd graph: that graph would keep the capture
        # stream's AccumulateGrad nodes alive, and later eager steps (an epoch's smaller last
        # batch) would reuse them from the default stream (PyTorch warns: extra synchronization).
        self.loss = loss.detach()
        del loss

        with torch.no_grad():
            for p, saved in zip(params, saved_params):
                p.copy_(saved)
            for b, saved in saved_buffers:
                b.copy_(saved)
            for p in params:
                before = saved_state.get(id(p), {})
                for k, v in optimizer.state[p].items():
                    if isinstance(v, torch.Tensor):
                        v.copy_(before[k]) if k in before else v.zero_()
        torch.cuda.synchronize()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != self.x.shape or y.shape != self.y.shape:
            return self.eager(x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.loss.detach()

    def eager(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A step of another batch size, without the graph; the gradient buffers the graph owns
        are zeroed in place (not freed), so backward accumulates into them from zero."""
        self.optimizer.zero_grad(set_to_none=False)
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()
