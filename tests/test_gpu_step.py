"""``python -m egeunet.benchmarks.gpu_step``: eager vs CUDA-graph training steps on a GPU.

Without CUDA (CI) the script must refuse in one line and point to the CPU benchmark; the
measurement itself runs where a GPU is visible (it ran on an H200, see BENCHMARKS.md).
"""

from __future__ import annotations

import pytest
import torch

from egeunet.benchmarks import gpu_step

from conftest import refusal


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a GPU")
def test_without_a_gpu_it_says_so_and_names_the_cpu_benchmark():
    with pytest.raises(SystemExit) as e:
        gpu_step.main(["--steps", "1", "--rounds", "1"])
    assert "no CUDA GPU" in str(e.value.code) and "train_throughput" in str(e.value.code)


@pytest.mark.parametrize("args,message", [(["--steps", "0"], "--steps: must be >= 1"),
                                          (["--size", "100"], "--size must be a multiple of 32")])
def test_bad_arguments_are_refused_before_any_work(args, message, capsys):
    assert message in refusal(gpu_step.main, args, capsys)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch)")
def test_every_variant_computes_the_same_loss_and_is_timed():
    res = gpu_step.run(steps=2, rounds=1, size=64)
    losses = list(res["first_step_loss"].values())
    assert len(losses) == len(gpu_step.VARIANTS) and max(losses) - min(losses) < 1e-5
    assert all(v > 0 for v in res["img_per_s"].values())
