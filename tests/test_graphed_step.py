"""``egeunet-train --device cuda``: the CUDA-graph step is the eager step, replayed.

The equivalence test needs a CUDA GPU and skips on CPU-only machines (CI has none; it ran
on an H200 lent to a development session, see BENCHMARKS.md). Everything before that line
(the device checks, the per-epoch augmentation draws) is tested on the CPU.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from egeunet.evaluate import images_to_tensor
from egeunet.preprocess import Preprocessing
from egeunet.train import TrainConfig, _setup_device, random_affines, train, training_batch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch)")


def test_unknown_or_missing_device_is_a_clear_error(tmp_path):
    for bad in ("tpu", "cuda:x", "gpu"):
        with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
            train(TrainConfig(data=str(tmp_path), device=bad))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            _setup_device("cuda")


def test_batches_drawn_ahead_equal_batches_drawn_per_step():
    # The trainer draws an epoch's augmentations before its first step (one copy to a GPU);
    # that must be the same random stream as drawing inside each step.
    g = torch.Generator()
    images = torch.randint(0, 256, (6, 64, 64, 3), dtype=torch.uint8, generator=g)
    masks = torch.randint(0, 2, (6, 64, 64), dtype=torch.uint8, generator=g)
    pre = Preprocessing(size=64, mean=(120.0, 110.0, 100.0), std=(50.0, 40.0, 30.0))
    batches = [torch.tensor([0, 3, 5]), torch.tensor([1, 2]), torch.tensor([4])]
    g.manual_seed(7)
    per_step = [training_batch(images, masks, i, pre, g) for i in batches]
    g.manual_seed(7)
    thetas = [random_affines(len(i), g) for i in batches]
    ahead = [training_batch(images, masks, i, pre, g, t) for i, t in zip(batches, thetas)]
    for (xa, ya), (xb, yb) in zip(per_step, ahead):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(per_step[0][0][0], images_to_tensor(images[:1], pre)[0])  # augmentation did act


@needs_cuda
@pytest.mark.parametrize("compiled,norms", [(False, "paper"), (True, "paper"), (False, "batch")])
def test_graph_replay_trains_like_eager_steps(compiled, norms):
    from egeunet.graphed_step import GraphedTrainingStep, set_lr
    from egeunet.train import _eager_step, build_model_and_optimizer

    _setup_device("cuda")
    torch.backends.cudnn.benchmark = False  # the same convolution algorithms in both runs
    torch.backends.cudnn.deterministic = True
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(n, 3, 64, 64, generator=g).cuda(), (torch.rand(n, 1, 64, 64, generator=g) > 0.5).float().cuda())
            for n in (4, 4, 4, 2, 4, 4)]  # a smaller batch in between, as an epoch's last one
    lrs = [1e-3, 8e-4, 6e-4, 4e-4, 2e-4, 1e-4]

    def run(graphed: bool):
        torch.manual_seed(1)
        model, opt, loss_fn = build_model_and_optimizer(compiled_kernels=compiled, norms=norms, device="cuda")
        model.train()
        start = [p.detach().clone() for p in model.parameters()]
        step = GraphedTrainingStep(model, opt, loss_fn, (4, 3, 64, 64), (4, 1, 64, 64)) if graphed else None
        losses = []
        for (x, y), lr in zip(data, lrs):
            set_lr(opt, lr)
            if step is None:
                loss = _eager_step(model, opt, x, y, loss_fn)
            else:
                loss = step(x, y) if x.shape[0] == 4 else step.eager(x, y)
            losses.append(loss.item())
        state = [t.detach().clone().float() for t in model.state_dict().values()]  # + BatchNorm statistics
        return losses, start, [p.detach().clone() for p in model.parameters()], state

    eager_losses, start, eager_params, eager_state = run(False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        graph_losses, graph_start, _, graph_state = run(True)
    # the eager step of the smaller batch must not reuse the capture stream's autograd nodes
    assert not [w for w in seen if "AccumulateGrad" in str(w.message)], [str(w.message) for w in seen]
    assert all(torch.equal(a, b) for a, b in zip(start, graph_start))
    assert graph_losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-5)
    assert eager_losses[-1] < eager_losses[0]
    moved = max((a - b).abs().max().item() for a, b in zip(eager_params, start))
    assert moved > 1e-3
    if norms == "paper":
        worst = max((a - b).abs().max().item() for a, b in zip(eager_state, graph_state))
        assert worst < 1e-5, worst
    # EGE-UNet-BN: a conv bias right before a BatchNorm has a gradient of exactly zero in
    # theory, float noise in practice, and AdamW turns noise into full +-lr steps of random
    # sign; those biases (and the running means they feed) differ by up to 2 * sum(lr)
    # between any two runs that sum in another order (seen on an H200: 0.0054). The losses
    # above are the meaningful check there.


@needs_cuda
@pytest.mark.parametrize("norms", ["paper", "batch"])
def test_capture_leaves_weights_moments_and_statistics_as_they_were(norms):
    from egeunet.graphed_step import GraphedTrainingStep, set_lr
    from egeunet.train import _eager_step, build_model_and_optimizer

    _setup_device("cuda")
    torch.manual_seed(2)
    model, opt, loss_fn = build_model_and_optimizer(compiled_kernels=False, norms=norms, device="cuda")
    model.train()
    x, y = torch.randn(2, 3, 64, 64, device="cuda"), (torch.rand(2, 1, 64, 64, device="cuda") > 0.5).float()
    set_lr(opt, 1e-3)
    _eager_step(model, opt, x, y, loss_fn)  # moments and statistics that are not at their initial values
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_opt = [{k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()]
    GraphedTrainingStep(model, opt, loss_fn, (4, 3, 64, 64), (4, 1, 64, 64))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before_model[k]), k
    for p, before in zip(model.parameters(), before_opt):
        for k, v in opt.state[p].items():
            assert torch.equal(v, before[k]), k
