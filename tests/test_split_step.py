import pytest
import torch

from egeunet.data import SegmentationFolder, channel_stats
from egeunet.graphed_step import set_lr
from egeunet.preprocess import Preprocessing
from egeunet.split_step import HelperProcessError, SplitStep
from egeunet.train import build_model_and_optimizer, random_affines, training_batch


@pytest.fixture(scope="module")
def isic_arrays(isic_root):
    split = SegmentationFolder(isic_root).load_split("train", 64, limit=12, progress=False)
    mean, std = channel_stats(split.images)
    return torch.from_numpy(split.images), torch.from_numpy(split.masks), Preprocessing(size=64, mean=mean, std=std)


def _whole_batch_gradient(model, loss_fn, optimizer, images, masks, pre, idx, theta):
    """Loss and flat gradient of the whole batch in this process, on the weights the helper shares."""
    x, y = training_batch(images, masks, idx, pre, None, theta, compiled=False)
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    return loss.item(), optimizer.flat_gradients.clone()


def test_split_step_gives_the_whole_batch_loss_and_gradient_and_the_helper_follows_the_weights(isic_arrays):
    images, masks, pre = isic_arrays
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, optimizer, loss_fn = build_model_and_optimizer(compiled_kernels=False)
    gen = torch.Generator().manual_seed(0)
    with SplitStep(model, optimizer, loss_fn, images, masks, pre, 2, 1, compiled=False) as split:
        for batch, lr in ((5, 1e-2), (8, 1e-2), (1, 0.0)):  # 5: shares of 3 and 2; 1: the helper idles
            idx, theta = torch.randperm(len(images), generator=gen)[:batch], random_affines(batch, gen)
            ref_loss, ref_grad = _whole_batch_gradient(model, loss_fn, optimizer, images, masks, pre, idx, theta)
            set_lr(optimizer, 0.0)  # a step that keeps the weights, leaving its gradient to compare
            loss = split.step(idx, theta)
            grad = optimizer.flat_gradients
            assert loss == pytest.approx(ref_loss, rel=1e-5)
            assert (grad - ref_grad).abs().max() <= 1e-4 * ref_grad.abs().max(), batch
            # a real step: the helper must compute the next batch on the updated shared weights
            set_lr(optimizer, lr)
            before = optimizer.flat_parameters.clone()
            split.step(idx, theta)
            assert not torch.equal(before, optimizer.flat_parameters) or lr == 0.0


def test_a_helper_that_dies_is_named_not_waited_for(isic_arrays):
    images, masks, pre = isic_arrays
    torch.set_num_threads(1)
    model, optimizer, loss_fn = build_model_and_optimizer(compiled_kernels=False)
    split = SplitStep(model, optimizer, loss_fn, images, masks, pre, 2, 1, compiled=False)
    proc = split.helpers[0][0]
    proc.kill()
    proc.join()
    with pytest.raises(HelperProcessError, match=r"ended unexpectedly \(exit code -9\)"):
        split.step(torch.arange(4), random_affines(4, torch.Generator().manual_seed(0)))
    split.close()
    assert split.helpers == []


def test_split_step_refuses_what_it_cannot_split(isic_arrays):
    images, masks, pre = isic_arrays
    model, optimizer, loss_fn = build_model_and_optimizer(compiled_kernels=False, norms="batch")
    with pytest.raises(ValueError, match="cannot be split"):
        SplitStep(model, optimizer, loss_fn, images, masks, pre, 2, 1, norms="batch")
    plain = torch.optim.AdamW(model.parameters())
    with pytest.raises(TypeError, match="FlatAdamW"):
        SplitStep(model, plain, loss_fn, images, masks, pre, 2, 1)


def test_trainer_trains_in_one_process_when_memory_cannot_be_shared(isic_root, tmp_path, monkeypatch, caplog):
    """A container's small /dev/shm cannot hold the images: the run goes on unsplit, and says why."""
    from egeunet.train import TrainConfig, train

    def no_space(self):
        raise RuntimeError("unable to write to file </torch_1_2>: No space left on device (28)")

    monkeypatch.setattr(torch.Tensor, "share_memory_", no_space)
    cfg = TrainConfig(data=str(isic_root), out=str(tmp_path / "o"), epochs=1, limit_train=4, limit_val=2, threads=2,
                      compiled_kernels=False, progress=False)
    with caplog.at_level("INFO", logger="egeunet.train"):
        summary = train(cfg)
    assert summary["epoch"] == 1
    assert "could not start the split step's helper processes (unable to write to file" in caplog.text
    assert "--shm-size" in caplog.text and "is split over" not in caplog.text
    assert torch.get_num_threads() == 2
