"""``egeunet-train --device cuda``: the CUDA-graph step is the eager step, replayed.

The equivalence test needs a CUDA GPU and skips on CPU-only machines (CI has none; it ran
on an H200 lent to a development session, see BENCHMARKS.md). Everything before that line
(the device checks, the per-epoch augmentation draws) is tested on the CPU.
"""

from __future__ import annotations

import pytest
import torch

from egeunet.evaluate import images_to_tensor
from egeunet.preprocess import Preprocessing
from egeunet.train import TrainConfig, _check_device, random_affines, train, training_batch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch)")


def test_unknown_or_missing_device_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda"):
        train(TrainConfig(data=str(tmp_path), device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            _check_device("cuda")


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
@pytest.mark.parametrize("compiled", [False, True])
def test_graph_replay_trains_like_eager_steps(compiled):
    from egeunet.graphed_step import GraphedTrainingStep, set_lr
    from egeunet.train import _eager_step, build_model_and_optimizer

    _check_device("cuda")
    torch.backends.cudnn.benchmark = False  # the same convolution algorithms in both runs
    torch.backends.cudnn.deterministic = True
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(n, 3, 64, 64, generator=g).cuda(), (torch.rand(n, 1, 64, 64, generator=g) > 0.5).float().cuda())
            for n in (4, 4, 4, 2, 4, 4)]  # a smaller batch in between, as an epoch's last one
    lrs = [1e-3, 8e-4, 6e-4, 4e-4, 2e-4, 1e-4]

    def run(graphed: bool):
        torch.manual_seed(1)
        model, opt, loss_fn = build_model_and_optimizer(compiled_kernels=compiled, device="cuda")
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
        return losses, start, [p.detach().clone() for p in model.parameters()]

    eager_losses, start, eager_params = run(False)
    graph_losses, graph_start, graph_params = run(True)
    assert all(torch.equal(a, b) for a, b in zip(start, graph_start))
    assert graph_losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-5)
    assert eager_losses[-1] < eager_losses[0]
    worst = max((a - b).abs().max().item() for a, b in zip(eager_params, graph_params))
    moved = max((a - b).abs().max().item() for a, b in zip(eager_params, start))
    assert worst < 1e-5 and moved > 1e-3, (worst, moved)
