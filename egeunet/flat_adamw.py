"""AdamW over one flat buffer: the CPU trainer's optimizer.

EGE-UNet has 53,374 parameters in 314 tensors. PyTorch's fused AdamW runs one kernel for all
of them, but its Python side still walks the 314 tensors every step (grouping them, one step
counter each, a ``zero_grad`` that drops 314 gradients that autograd then allocates again):
~3.5 ms of a ~100 ms CPU step went to ``optimizer.step`` + ``zero_grad``, against 0.44 ms
for this class (``torch.profiler``; whole steps 1.028x, docs/experiments/2026-11-27/flat_adamw.py).

Here every parameter, gradient and moment is a view into one of four flat buffers, laid out
with each parameter's own strides (channels_last convolutions stay channels_last). Autograd
accumulates each gradient in place into its view, ``zero_grad`` is one fill, and the step is
one fused AdamW call on one tensor. AdamW is element-wise, so the update is
``torch.optim.AdamW(model.parameters(), fused=True)``'s: the first one to the bit, later ones to
float rounding (the fused kernel's vector and scalar loops round a tensor's last elements
differently; tested). The state dict has the same per-parameter form, so optimizer states saved
by either load in the other.
"""

from __future__ import annotations

import torch
from torch.optim.adamw import adamw


def _dense(p: torch.Tensor) -> bool:
    """Whether ``p`` fills its memory exactly, in some order of its dimensions (contiguous,
    channels_last, ...): then a flat slice viewed with its strides holds it."""
    expected = 1
    for size, stride in sorted(zip(p.shape, p.stride()), key=lambda d: d[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def _view_like(flat: torch.Tensor, offset: int, p: torch.Tensor) -> torch.Tensor:
    return flat.as_strided(p.shape, p.stride(), offset)


class FlatAdamW(torch.optim.Optimizer):
    """``torch.optim.AdamW(params, lr, betas, eps, weight_decay, fused=True)`` with the
    parameters moved into one flat buffer (CPU, float32, one parameter group).

    The parameters' data are replaced by views of the buffer, so build it after the model's
    last ``.to(...)``; their ``.grad`` stay views of the gradient buffer, which
    ``zero_grad`` fills with zeros whatever ``set_to_none`` says. A gradient that was replaced
    (``p.grad = ...`` or another optimizer's ``zero_grad``) is copied back in by ``step``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        params = list(params)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        if len(self.param_groups) != 1:
            raise ValueError("FlatAdamW takes one parameter group")
        for p in params:
            if p.device.type != "cpu" or p.dtype != torch.float32 or not _dense(p):
                raise ValueError(f"FlatAdamW needs dense float32 CPU parameters, got {p.dtype} {tuple(p.shape)} "
                                 f"on {p.device}")
        total = sum(p.numel() for p in params)
        self._flat = torch.zeros(total)
        self._grad = torch.zeros(total)
        self._exp_avg = torch.zeros(total)
        self._exp_avg_sq = torch.zeros(total)
        self._step = torch.zeros(())  # one counter: every parameter takes every step
        self._offsets = []
        offset = 0
        with torch.no_grad():
            for p in params:
                view = _view_like(self._flat, offset, p)
                view.copy_(p)
                p.data = view
                p.grad = _view_like(self._grad, offset, p)
                self._offsets.append(offset)
                offset += p.numel()
        self._params = params
        self._grads = [p.grad for p in params]
        self._link_state()

    @property
    def flat_parameters(self) -> torch.Tensor:
        """The buffer every parameter views."""
        return self._flat

    @property
    def flat_gradients(self) -> torch.Tensor:
        """The buffer every gradient views (what ``step`` applies)."""
        return self._grad

    def view_buffers(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        """Make the parameters views of ``flat`` (taking its values, not giving theirs) and the
        gradients views of ``grad``: another process's buffers in shared memory
        (``egeunet.split_step``). Both must hold exactly this optimizer's parameters."""
        for name, t in (("parameter", flat), ("gradient", grad)):
            if t.shape != self._flat.shape or t.dtype != torch.float32:
                raise ValueError(f"the {name} buffer holds {tuple(t.shape)} {t.dtype}, "
                                 f"not the {self._flat.numel():,} float32 values of these parameters")
        self._flat, self._grad = flat, grad
        for i, (p, offset) in enumerate(zip(self._params, self._offsets)):
            p.data = _view_like(flat, offset, p)
            p.grad = self._grads[i] = _view_like(grad, offset, p)

    def _link_state(self) -> None:
        """``self.state[p]`` as views of the flat moments (what ``state_dict`` saves)."""
        for p, offset in zip(self._params, self._offsets):
            self.state[p] = {"step": self._step, "exp_avg": _view_like(self._exp_avg, offset, p),
                             "exp_avg_sq": _view_like(self._exp_avg_sq, offset, p)}

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: ARG002 - the views must stay
        self._grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for p, g in zip(self._params, self._grads):
            if p.grad is not g:  # replaced from outside: take its values, keep the view
                g.copy_(p.grad if p.grad is not None else torch.zeros_like(g))
                p.grad = g
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        # the fused path counts the step itself (self._step += 1) before the update
        adamw([self._flat], [self._grad], [self._exp_avg], [self._exp_avg_sq], [], [self._step], fused=True,
              amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
              eps=group["eps"], maximize=False)
        return loss

    def state_dict(self) -> dict:
        sd = super().state_dict()
        # one step tensor per parameter, as AdamW's own: its fused step adds 1 to each, so a
        # shared one loaded there would count 314 steps per step
        for st in sd["state"].values():
            st["step"] = st["step"].clone()
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        loaded = [self.state.get(p, {}) for p in self._params]
        with torch.no_grad():
            self._exp_avg.zero_()
            self._exp_avg_sq.zero_()
            self._step.zero_()
            for p, offset, st in zip(self._params, self._offsets, loaded):
                if "exp_avg" in st:
                    _view_like(self._exp_avg, offset, p).copy_(st["exp_avg"])
                    _view_like(self._exp_avg_sq, offset, p).copy_(st["exp_avg_sq"])
                    self._step.copy_(torch.maximum(self._step, torch.as_tensor(st["step"], dtype=torch.float32)))
        self._link_state()
