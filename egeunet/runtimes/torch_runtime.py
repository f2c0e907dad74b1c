"""PyTorch eager: the fp32 reference every export is compared with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egeunet.runtimes.base import IOSpec, Runtime


def torch_spec(size: int) -> IOSpec:
    return IOSpec("image", (1, 3, size, size), "float32", "NCHW", "normalized",
                  "logits", (1, 1, size, size), "float32", "logits")


class TorchRuntime(Runtime):
    name = "torch"

    def __init__(self, path: str | Path | None = None, threads: int | None = None) -> None:
        import torch

        from egeunet.model.checkpoint import PRETRAINED, load_checkpoint

        if threads:  # PyTorch has one intra-op thread count per process: this sets it for all of it
            torch.set_num_threads(threads)
        self.model, pre, self.meta = load_checkpoint(path)
        super().__init__(path or PRETRAINED, pre, torch_spec(pre.size))

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).numpy()
