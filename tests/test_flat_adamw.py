import copy

import pytest
import torch

from egeunet.flat_adamw import FlatAdamW
from egeunet.graphed_step import set_lr
from egeunet.model import egeunet
from egeunet.train import deep_supervision_loss


def _model_and_batches(n: int, size: int = 64):
    torch.manual_seed(0)
    model = egeunet().train().to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(2, 3, size, size, generator=g).contiguous(memory_format=torch.channels_last),
                (torch.rand(2, 1, size, size, generator=g) > 0.5).float()) for _ in range(n)]
    return model, batches


def _steps(model, opt, batches, rates):
    for (x, y), lr in zip(batches, rates):
        set_lr(opt, lr)
        loss = deep_supervision_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def test_flat_adamw_updates_like_fused_adamw_and_keeps_parameters_in_one_buffer():
    model, batches = _model_and_batches(4)
    flat_model = copy.deepcopy(model)
    fused = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2, fused=True)
    flat = FlatAdamW(flat_model.parameters(), lr=1e-3, weight_decay=1e-2)
    params = list(flat_model.parameters())
    base, end = flat._flat.data_ptr(), flat._flat.data_ptr() + flat._flat.numel() * 4
    assert all(base <= p.data_ptr() < end for p in params)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in params if p.dim() == 4)

    _steps(model, fused, batches[:1], [1e-3])
    _steps(flat_model, flat, batches[:1], [1e-3])
    assert _max_difference(model, flat_model) == 0.0  # the first update is the same to the bit
    # the fused kernel's vector and scalar loops may round a tensor's last elements differently
    _steps(model, fused, batches[1:], [5e-4, 2e-4, 1e-4])
    _steps(flat_model, flat, batches[1:], [5e-4, 2e-4, 1e-4])
    assert _max_difference(model, flat_model) < 1e-6
    assert all(base <= p.data_ptr() < end for p in flat_model.parameters())  # still the buffer's views
    assert float(flat.state[params[0]]["step"]) == 4.0


@pytest.mark.parametrize("direction", ["flat to fused", "fused to flat"])
def test_optimizer_states_load_across_flat_and_fused_adamw(direction):
    model, batches = _model_and_batches(3)
    flat_first = direction == "flat to fused"
    make_first = (lambda m: FlatAdamW(m.parameters())) if flat_first else \
        (lambda m: torch.optim.AdamW(m.parameters(), fused=True))
    make_second = (lambda m: torch.optim.AdamW(m.parameters(), fused=True)) if flat_first else \
        (lambda m: FlatAdamW(m.parameters()))
    first = make_first(model)
    _steps(model, first, batches[:2], [1e-3, 1e-3])
    other = copy.deepcopy(model)
    second = make_second(other)
    second.load_state_dict(copy.deepcopy(first.state_dict()))  # as from a file: no shared tensors
    p0 = next(other.parameters())
    assert float(second.state[p0]["step"]) == 2.0
    _steps(model, first, batches[2:], [1e-3])
    _steps(other, second, batches[2:], [1e-3])
    assert _max_difference(model, other) < 1e-6


def test_a_replaced_gradient_is_taken_into_the_buffer():
    model, _ = _model_and_batches(0)
    opt = FlatAdamW(model.parameters(), lr=0.1, weight_decay=0.0)
    p = next(model.parameters())
    before = p.detach().clone()
    opt.zero_grad()
    p.grad = torch.ones_like(p)  # e.g. a user's hook or another optimizer's zero_grad
    opt.step()
    assert torch.allclose(p.detach(), before - 0.1, atol=1e-6)  # AdamW's first step: lr * sign(grad)
    assert opt._grad.data_ptr() <= p.grad.data_ptr() < opt._grad.data_ptr() + opt._grad.numel() * 4


def test_flat_adamw_refuses_parameters_it_cannot_hold():
    with pytest.raises(ValueError, match="float32 CPU"):
        FlatAdamW([torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))])
    with pytest.raises(ValueError, match="float32 CPU"):
        FlatAdamW([torch.nn.Parameter(torch.zeros(4, 4)[:, :2])])
