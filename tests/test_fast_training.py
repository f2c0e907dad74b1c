"""The training-speed levers compute the same function as the plain model."""

import logging

import pytest
import torch
import torch.nn.functional as F

from egeunet.model import egeunet
from egeunet.model.egeunet import LayerNorm2d, layer_norm_2d, upsample_logits_for_training
from egeunet.model.fast_norms import compile_layer_norms, compiled_layer_norm, eager_layer_norms
from egeunet.train import build_model_and_optimizer, deep_supervision_loss


@pytest.mark.parametrize("size_in", [(16, 16), (33, 20), (1, 7)])
def test_matrix_upsampling_equals_interpolate_forward_and_backward(size_in):
    torch.manual_seed(0)
    x = torch.randn(3, 1, *size_in, requires_grad=True)
    out = (64, 48)
    ref = F.interpolate(x, size=out, mode="bilinear", align_corners=True)
    got = upsample_logits_for_training(x, out)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    (gx_ref,) = torch.autograd.grad(ref, x, g)
    (gx_got,) = torch.autograd.grad(got, x, g)
    torch.testing.assert_close(gx_got, gx_ref, atol=1e-4, rtol=1e-5)


def test_compiled_layer_norm_equals_eager_forward_and_backward():
    torch.manual_seed(0)
    norm = LayerNorm2d(20)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = (torch.randn(2, 20, 24, 24) * 3 + 1).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    kernel = compiled_layer_norm()
    y_eager = layer_norm_2d(x, norm.weight, norm.bias, norm.eps)
    y_comp = kernel(x, norm.weight, norm.bias, norm.eps)
    assert kernel.failed is None, kernel.failed
    torch.testing.assert_close(y_comp, y_eager, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y_eager)
    grads_eager = torch.autograd.grad(y_eager, [x, norm.weight, norm.bias], g)
    grads_comp = torch.autograd.grad(y_comp, [x, norm.weight, norm.bias], g)
    for a, b in zip(grads_comp, grads_eager):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_compiled_layer_norm_falls_back_to_eager_with_one_warning(caplog):
    kernel = compiled_layer_norm()

    def broken(*_args):
        raise RuntimeError("no C++ compiler found\nlong inductor trace")

    kernel.compiled = broken
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    w, b = torch.ones(4), torch.zeros(4)
    with caplog.at_level(logging.WARNING):
        y1 = kernel(x, w, b, 1e-6)
        y2 = kernel(x, w, b, 1e-6)
    torch.testing.assert_close(y1, layer_norm_2d(x, w, b, 1e-6))
    torch.testing.assert_close(y2, y1)
    warnings = [r for r in caplog.records if "compiled LayerNorm unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler found" in warnings[0].getMessage()
    assert "long inductor trace" not in warnings[0].getMessage()


def test_training_setup_gives_the_plain_models_loss_and_gradients():
    """channels_last + compiled norms + matrix upsampling vs the plain NCHW eager model."""
    torch.manual_seed(0)
    fast, _, loss_fn = build_model_and_optimizer()
    plain = egeunet().train()
    plain.load_state_dict(fast.state_dict())
    eager_layer_norms(plain)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    y = (torch.rand(2, 1, 64, 64) > 0.6).float()
    loss_fast = loss_fn(fast(x.contiguous(memory_format=torch.channels_last)), y)
    loss_plain = deep_supervision_loss(plain(x), y)
    torch.testing.assert_close(loss_fast, loss_plain, atol=1e-5, rtol=1e-5)
    loss_fast.backward()
    loss_plain.backward()
    worst = max((a.grad - b.grad).abs().max().item() / (b.grad.abs().max().item() + 1e-12)
                for a, b in zip(fast.parameters(), plain.parameters()))
    assert worst < 1e-3, worst
    # evaluation takes the eager path: no deep-supervision maps, the export's resize op
    fast.eval()
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1, 64, 64)


def test_compile_layer_norms_reaches_every_norm_and_keeps_the_state_dict():
    model = egeunet()
    keys = set(model.state_dict())
    assert compile_layer_norms(model) == 37
    assert set(model.state_dict()) == keys


def test_throughput_benchmark_runs_every_lever_with_the_same_loss(tmp_path):
    """Tiny run on synthetic images: every variant runs, all compute the same loss."""
    from egeunet.benchmarks import train_throughput as tt

    res = tt.run(threads=1, steps=1, warmup=0, batch=2, size=64, rounds=1, levers=True,
                 data=str(tt._synthetic_folder(tmp_path / "syn", 6, 64)), n_images=6)
    names = tt.MAIN + tt.LEVER_ORDER[1:]
    assert list(res["img_per_s"]) == names
    assert all(v > 0 for v in res["img_per_s"].values())
    losses = list(res["first_step_loss"].values())
    assert max(losses) - min(losses) < 1e-4 * abs(losses[0]), res["first_step_loss"]
    assert res["speedup"] == res["img_per_s"]["egeunet-train"] / res["img_per_s"]["reference eager"]
    assert "| egeunet-train |" in tt.markdown(res)


def test_reference_variant_is_the_official_formulation_of_the_same_function():
    from egeunet.benchmarks.train_throughput import _officialize

    torch.manual_seed(0)
    ours = egeunet().eval()
    official = _officialize(egeunet().eval())
    official.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = official(x), ours(x)
    # sqrt + division vs rsqrt: float rounding only, far below the logits' scale
    assert (a - b).abs().max() < 1e-5 * b.abs().max() + 1e-4, ((a - b).abs().max(), b.abs().max())
