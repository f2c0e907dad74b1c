"""The training-speed levers compute the same function as the plain model."""

import logging

import pytest
import torch
import torch.nn.functional as F

from egeunet.model import egeunet
from egeunet.model.egeunet import LayerNorm2d, _bilinear_matrix, layer_norm_2d, upsample_logits_for_training
from egeunet.model.fast_norms import compile_layer_norms, compiled_layer_norm, eager_layer_norms
from egeunet.train import build_model_and_optimizer, deep_supervision_loss

from conftest import refusal, skip_without_cxx_compiler


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


@pytest.mark.parametrize("size_in, size_out", [((128, 128), (256, 256)), ((16, 33), (64, 48)), ((1, 7), (5, 40)),
                                               ((4, 4), (256, 256))])
def test_banded_resize_backward_equals_autograd(size_in, size_out):
    """The loss maps' banded backward (a direct kernel; the matrix products where the band is wide,
    as for 4 -> 256 and a 1-pixel side) gives F.interpolate's autograd gradient, taken in float64
    (float32 autograd's own scatter is less exact than the bands at 128 -> 256)."""
    from egeunet.model.fast_resize import _KERNELS, MAX_BAND, resize_band, upsample_logits_banded_backward

    torch.manual_seed(0)
    x = torch.randn(3, 1, *size_in, requires_grad=True)
    ref = F.interpolate(x.double(), size=size_out, mode="bilinear", align_corners=True)
    got = upsample_logits_banded_backward(x, size_out)
    torch.testing.assert_close(got, F.interpolate(x, size=size_out, mode="bilinear", align_corners=True), atol=0, rtol=0)
    g = torch.randn_like(got)
    (gx_ref,) = torch.autograd.grad(ref, x, g.double())
    (gx_got,) = torch.autograd.grad(got, x, g)
    if _KERNELS.failed is not None:
        skip_without_cxx_compiler("the banded resize backward")
    torch.testing.assert_close(gx_got, gx_ref.float(), atol=3e-6, rtol=2e-5)
    # every non-zero of the resize's matrix is in the band, each once
    for n_out, n_in in zip(size_out, size_in):
        index, weight = resize_band(n_out, n_in)
        dense = torch.zeros(n_in, n_out).scatter_add_(1, index, weight)
        torch.testing.assert_close(dense, _bilinear_matrix(n_out, n_in).T, atol=0, rtol=0)
    if size_in == (128, 128):
        assert resize_band(256, 128)[0].shape[1] <= MAX_BAND  # the step's largest maps take the kernel


@pytest.mark.parametrize("direct", [True, False], ids=["direct-kernels", "torch.compile"])
@pytest.mark.parametrize("shape, layout", [((2, 20, 24, 24), torch.channels_last), ((3, 5, 7, 9), torch.contiguous_format)])
def test_compiled_layer_norm_equals_eager_forward_and_backward(direct, shape, layout):
    """Both kernels (the CPU's direct ones and torch.compile's, the GPU's) give the eager norm and
    its autograd gradients; (3, 5, 7, 9) has a pixel count that 64 does not divide (one-stage sums)."""
    torch.manual_seed(0)
    norm = LayerNorm2d(shape[1])
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = (torch.randn(shape) * 3 + 1).contiguous(memory_format=layout).requires_grad_(True)
    kernel = compiled_layer_norm(direct)
    y_eager = layer_norm_2d(x, norm.weight, norm.bias, norm.eps)
    y_comp = kernel(x, norm.weight, norm.bias, norm.eps)
    g = torch.randn_like(y_eager)
    grads_comp = torch.autograd.grad(y_comp, [x, norm.weight, norm.bias], g)
    if kernel.failed is not None:
        skip_without_cxx_compiler("the compiled LayerNorm")  # else a compiler is there: a real failure
    assert kernel.failed is None, kernel.failed
    torch.testing.assert_close(y_comp, y_eager, atol=1e-5, rtol=1e-5)
    grads_eager = torch.autograd.grad(y_eager, [x, norm.weight, norm.bias], g)
    for a, b in zip(grads_comp, grads_eager):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    if direct:  # compiled once per input layout: forward, input gradient, weight/bias gradients
        (kernels,) = kernel.kernels.values()
        assert [len(k.compiled) for k in (kernels.forward, kernels.input_grad, kernels.param_grads)] == [1, 1, 1]
        with torch.no_grad():  # evaluation: the eager function, nothing compiled
            torch.testing.assert_close(kernel(x, norm.weight, norm.bias, norm.eps), y_eager.detach())


def _failing_compiler(*_args):
    raise RuntimeError("no C++ compiler found\nlong inductor trace")


@pytest.mark.parametrize("direct", [True, False], ids=["direct-kernels", "torch.compile"])
def test_compiled_layer_norm_falls_back_to_eager_with_one_warning(caplog, monkeypatch, direct):
    kernel = compiled_layer_norm(direct)
    if direct:
        monkeypatch.setattr("egeunet.model.fast_norms._inductor_compile", _failing_compiler)
    else:
        kernel.compiled = _failing_compiler
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    w, b = torch.ones(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    with caplog.at_level(logging.WARNING):
        y1 = kernel(x, w, b, 1e-6)
        y2 = kernel(x, w, b, 1e-6)
        grads = torch.autograd.grad(y1.sum() + y2.sum(), [x, w, b])
    y_eager = layer_norm_2d(x, w, b, 1e-6)
    torch.testing.assert_close(y1, y_eager)
    torch.testing.assert_close(y2, y1)
    for a, e in zip(grads, torch.autograd.grad(2 * y_eager.sum(), [x, w, b])):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)
    warnings = [r for r in caplog.records if "compiled LayerNorm unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler found" in warnings[0].getMessage()
    assert "long inductor trace" not in warnings[0].getMessage()


def test_direct_kernels_are_kept_on_disk_and_loaded_by_the_next_process(tmp_path, monkeypatch):
    """A kernel compiled once is saved; a new DirectKernel (as in the next process) loads it
    without compiling (the compiler is made to fail) and gives the same values; a damaged file
    is compiled again and replaced. A one-output kernel returns a tensor either way."""
    import torch._inductor

    from egeunet.model.fast_norms import DirectKernel, KernelGroup, _ln_forward, _ln_input_grad

    monkeypatch.setattr("egeunet.model.fast_norms.kernel_cache_dir", lambda: tmp_path)
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8, 8).contiguous(memory_format=torch.channels_last)
    w = torch.rand(6) + 0.5
    _, mean, rstd = _ln_forward(x, w, torch.zeros(6), 1e-6)
    grad = torch.randn_like(x)
    expected = _ln_input_grad(grad, x, w, mean, rstd)
    compiler = torch._inductor.standalone_compile

    def failing(*_args, **_kwargs):
        raise RuntimeError("compiled although a saved kernel was there")

    def run(compiles: bool) -> torch.Tensor:
        monkeypatch.setattr(torch._inductor, "standalone_compile", compiler if compiles else failing)
        kernel = DirectKernel(_ln_input_grad, KernelGroup("test kernel"))
        out = kernel(grad, x, w, mean, rstd)
        if compiles and kernel.group.failed is not None:
            skip_without_cxx_compiler("the direct kernels")
        assert kernel.group.failed is None, kernel.group.failed
        assert isinstance(out, torch.Tensor)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        return out

    run(compiles=True)
    (saved,) = tmp_path.glob("*.bin")  # one file, no temporary left behind
    assert [p.name for p in tmp_path.iterdir()] == [saved.name]
    run(compiles=False)  # loaded from disk
    saved.write_bytes(b"damaged")
    run(compiles=True)  # compiled again ...
    assert saved.read_bytes() != b"damaged"
    run(compiles=False)  # ... and the replacement loads


def test_training_setup_gives_the_plain_models_loss_and_gradients():
    """channels_last + compiled norms + the loss maps' banded-backward resize + the GHPA maps'
    compiled kernel pairs (blocks of one shape share them) vs the plain NCHW eager model."""
    from egeunet.model.egeunet import GHPA

    torch.manual_seed(0)
    fast, _, loss_fn = build_model_and_optimizer()
    fused = fast.encoder[3].attention_maps.func
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
    if fused.group.failed is not None:
        skip_without_cxx_compiler("the fused GHPA maps")
    # six blocks, four shapes at 64x64: (6, 8, 8), (8, 4, 4) x 2, (12, 2, 2) x 2, (16, 2, 2)
    assert [len(k.compiled) for k in fused.kernels] == [4, 4]
    # evaluation takes the eager path: no deep-supervision maps, the export's resize op, the
    # blocks' own weight maps
    fast.eval()
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last))
        block = fast.encoder[3]
        for mine, theirs in zip(block.attention_maps(6, 8, 8), GHPA.attention_maps(block, 6, 8, 8)):
            assert torch.equal(mine, theirs) and not mine.requires_grad
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


@pytest.mark.parametrize("shape", [(2, 8, 128, 128), (3, 16, 130, 134), (1, 8, 129, 131)])
def test_group_norm_max_pool_matches_autograd_forward_and_backward(shape):
    """The fused backward gives PyTorch's gradients, also with negative norm scales (the
    max then comes from the smallest input) and odd sizes (max-pool drops a row/column)."""
    from egeunet.model.egeunet import norm_then_max_pool
    from egeunet.model.fast_norms import group_norm_max_pool

    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(4, shape[1])
    with torch.no_grad():
        norm.weight.uniform_(-1.5, 1.5)
        norm.bias.normal_()
    z = (torch.randn(shape) * 3 + 1).contiguous(memory_format=torch.channels_last).requires_grad_()
    params = (z, norm.weight, norm.bias)
    ref = norm_then_max_pool(norm, z)
    got = group_norm_max_pool(norm, z)
    assert got.grad_fn is not None and "_GroupNormMaxPool" in type(got.grad_fn).__name__  # the fused path ran
    torch.testing.assert_close(got, ref, atol=0, rtol=0)  # same forward kernels
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, atol=2e-5 * b.abs().max().item(), rtol=1e-4)
        if a.dim() == 4:
            assert a.is_contiguous(memory_format=torch.channels_last)


def test_group_norm_max_pool_falls_back_where_it_was_not_measured_faster():
    from egeunet.model.fast_norms import group_norm_max_pool

    norm = torch.nn.GroupNorm(4, 8)
    small = torch.randn(2, 8, 64, 64).contiguous(memory_format=torch.channels_last).requires_grad_()
    nchw = torch.randn(2, 8, 128, 128, requires_grad=True)
    for x in (small, nchw):
        assert "MaxPool2DWithIndicesBackward" in type(group_norm_max_pool(norm, x).grad_fn).__name__
    with torch.no_grad():
        big = torch.randn(2, 8, 128, 128).contiguous(memory_format=torch.channels_last)
        assert group_norm_max_pool(norm, big).grad_fn is None


def test_training_model_uses_the_fused_stage_norm_pool_and_gives_the_plain_gradients():
    """A whole training model: same loss and parameter gradients as the plain eager model in
    the same memory layout. (Against an NCHW model the first layers' gradients differ by ~1 %:
    the layouts' float rounding flips near-ties of the max-pool, so that comparison is ill-posed.)"""
    from egeunet.model.egeunet import norm_then_max_pool

    torch.manual_seed(0)
    fast, _, _ = build_model_and_optimizer(compiled_kernels=False)
    plain = egeunet().train().to(memory_format=torch.channels_last)
    plain.load_state_dict(fast.state_dict())
    assert plain.stage_norm_pool is norm_then_max_pool and fast.stage_norm_pool is not norm_then_max_pool
    x = torch.randn(2, 3, 256, 256).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(2, 1, 256, 256) > 0.5).float()
    loss_fast, loss_plain = deep_supervision_loss(fast(x), y), deep_supervision_loss(plain(x), y)
    torch.testing.assert_close(loss_fast, loss_plain, atol=0, rtol=0)  # the forward is the same kernels
    loss_fast.backward()
    loss_plain.backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=2e-4 * b.grad.abs().max().item() + 1e-7, rtol=1e-3, msg=name)


@pytest.mark.parametrize("dilation,shape", [(2, (2, 5, 128, 128)), (7, (3, 5, 128, 130)), (5, (1, 9, 131, 128)),
                                            (5, (2, 13, 32, 32)), (7, (2, 25, 8, 9))])
def test_dilated_depthwise_conv_backward_matches_autograd(dilation, shape):
    from egeunet.model.fast_convs import dilated_depthwise_conv

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(shape[1], shape[1], 3, padding=dilation, dilation=dilation, groups=shape[1])
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_()
    params = (x, conv.weight, conv.bias)
    got, ref = dilated_depthwise_conv(conv, x), conv(x)
    assert "_DilatedDepthwiseConv" in type(got.grad_fn).__name__  # the written-out backward ran
    torch.testing.assert_close(got, ref, atol=0, rtol=0)  # the forward is the same oneDNN call
    # a slice of a wider gradient, as a concat's backward hands it over
    g = torch.randn(shape[0], 3 * shape[1], *shape[2:]).contiguous(memory_format=torch.channels_last)[:, shape[1]:2 * shape[1]]
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, atol=2e-5 * b.abs().max().item(), rtol=1e-4)


def test_dilated_depthwise_conv_is_the_plain_call_elsewhere():
    from egeunet.model.fast_convs import dilated_depthwise_conv

    plain = torch.nn.Conv2d(5, 5, 3, padding=1, groups=5)  # no dilation: oneDNN's own backward is faster
    dilated = torch.nn.Conv2d(5, 5, 3, padding=2, dilation=2, groups=5)
    full = torch.nn.Conv2d(5, 5, 3, padding=2, dilation=2)  # not depthwise
    x = torch.randn(1, 5, 64, 64).contiguous(memory_format=torch.channels_last).requires_grad_()
    for conv, inp in ((plain, x), (full, x), (dilated, x.detach().contiguous().requires_grad_())):
        assert "Convolution" in type(dilated_depthwise_conv(conv, inp).grad_fn).__name__
    with torch.no_grad():
        assert dilated_depthwise_conv(dilated, x).grad_fn is None


def test_dilated_depthwise_conv_without_compiling_gives_the_same_gradients():
    """``egeunet-train --no-compile``: the weight gradient runs eager, same values."""
    from egeunet.model.fast_convs import dilated_depthwise_conv

    torch.manual_seed(1)
    conv = torch.nn.Conv2d(5, 5, 3, padding=5, dilation=5, groups=5)
    x = torch.randn(2, 5, 64, 64).contiguous(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn(2, 5, 64, 64)
    grads = [torch.autograd.grad(dilated_depthwise_conv(conv, x, compiled=c), (x, conv.weight, conv.bias), g)
             for c in (False, True)]
    ref = torch.autograd.grad(conv(x), (x, conv.weight, conv.bias), g)
    for got in grads:
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, atol=2e-5 * b.abs().max().item(), rtol=1e-4)


@pytest.mark.parametrize("args", [["--steps", "0"], ["--rounds", "0"], ["--threads", "-1"]])
def test_throughput_benchmark_refuses_counts_below_one(args, capsys):
    from egeunet.benchmarks import train_throughput

    assert "must be >= 1" in refusal(train_throughput.main, args, capsys)


def test_dilated_depthwise_weight_gradient_falls_back_to_eager_with_one_warning(caplog, monkeypatch):
    """No C++ compiler: the compiled weight gradient becomes the eager one, same values, one warning."""
    from egeunet.model import fast_convs

    monkeypatch.setattr("egeunet.model.fast_norms._inductor_compile", _failing_compiler)
    monkeypatch.setattr(fast_convs._WEIGHT_GRAD_KERNELS, "failed", None)  # restored afterwards
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(3, 3, 3, padding=2, dilation=2, groups=3)
    x = torch.randn(1, 3, 67, 66).contiguous(memory_format=torch.channels_last).requires_grad_()
    with caplog.at_level(logging.WARNING):
        grads = [torch.autograd.grad(fast_convs.dilated_depthwise_conv(conv, x), (conv.weight, conv.bias),
                                     torch.ones(1, 3, 67, 66)) for _ in range(2)]
    ref = torch.autograd.grad(conv(x), (conv.weight, conv.bias), torch.ones(1, 3, 67, 66))
    for got in grads:
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, atol=2e-5 * b.abs().max().item(), rtol=1e-4)
    warnings = [r for r in caplog.records if "compiled depthwise weight gradient unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler found" in warnings[0].getMessage()


def test_ghpa_maps_written_out_are_the_blocks_own_maps():
    """The written-out maps (shifted products, summed 1x1 convs) equal each block's
    attention_maps, at the sizes a 256x256 input gives and an odd-sized one."""
    from egeunet.model.egeunet import GHPA
    from egeunet.model.fast_maps import block_parameters, ghpa_maps

    torch.manual_seed(0)
    blocks = [m for m in egeunet().modules() if isinstance(m, GHPA)]
    sizes = [(6, 32, 32), (8, 16, 16), (12, 8, 8), (16, 8, 8), (12, 8, 8), (8, 16, 16), (6, 5, 9)]
    for b, size in zip(blocks + blocks[:1], sizes):
        with torch.no_grad():  # away from the all-ones initialisation, so that every term counts
            for t in block_parameters(b):
                t.add_(torch.randn_like(t) * 0.3)
        c, h, w = size
        resize = _bilinear_matrix(h, b.params_xy.shape[2]), _bilinear_matrix(w, b.params_xy.shape[3])
        for mine, theirs in zip(ghpa_maps(*block_parameters(b), *resize), b.attention_maps(*size)):
            assert mine.shape == theirs.shape
            torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_fused_ghpa_maps_fall_back_to_the_blocks_own_maps_with_one_warning(caplog, monkeypatch):
    from egeunet.model.fast_maps import use_fused_ghpa_maps

    monkeypatch.setattr("egeunet.model.fast_norms._inductor_compile", _failing_compiler)
    torch.manual_seed(0)
    model = egeunet().train()
    plain = egeunet().train()
    plain.load_state_dict(model.state_dict())
    fused = use_fused_ghpa_maps(model)
    x = torch.randn(1, 3, 32, 32)
    with caplog.at_level(logging.WARNING):
        losses = [deep_supervision_loss(model(x), torch.ones(1, 1, 32, 32)) for _ in range(2)]
    for loss in losses:
        assert loss.item() == pytest.approx(deep_supervision_loss(plain(x), torch.ones(1, 1, 32, 32)).item(), rel=1e-6)
    warnings = [r for r in caplog.records if "compiled GHPA weight maps unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler found" in warnings[0].getMessage()
    assert fused.group.failed is not None
