"""Deploy-time rewrites of a trained EGE-UNet that compute the same function with ops
mobile converters handle well. Every rewrite is tested for equivalence (<= 1e-5).

``nn.GroupNorm`` exports to ONNX as Reshape(N, G, -1) -> InstanceNormalization -> Reshape.
Those reshapes mix the channel and spatial axes, and onnx2tf, which turns NCHW graphs into
NHWC ones, silently mis-lays such a tensor when it is square (seen here on the 32x32x32 map
after encoder stage 4: mask IoU vs PyTorch 0.28). :class:`GroupNormNoReshape` gets the group
statistics without any reshape of the feature map: per-channel spatial means, then a fixed
block-averaging 1x1 map across the channels of each group.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


ONE_MEAN_MAX_PIXELS = 32 * 32  # up to this many values per channel, one float32 mean is as accurate


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean over H and W, as two means (rows, then the row means) above 32x32.
    The same number; but exported, one ReduceMean over a 256x256 map sums 65,536 values in one
    float32 accumulator in ONNX Runtime (as MEAN does in TFLite, see tf_graph.spatial_mean),
    which cost 3.7e-4 in the logits on Kvasir-SEG images against PyTorch."""
    if x.shape[2] * x.shape[3] <= ONE_MEAN_MAX_PIXELS:
        return x.mean((2, 3), keepdim=True)
    return x.mean(3, keepdim=True).mean(2, keepdim=True)


class GroupNormNoReshape(nn.Module):
    """Same result as ``nn.GroupNorm`` (equal-size groups, biased variance), no reshapes."""

    def __init__(self, gn: nn.GroupNorm) -> None:
        super().__init__()
        c, g = gn.num_channels, gn.num_groups
        group = torch.arange(c) // (c // g)
        # averaging matrix: channel i <- mean of the channels in i's group
        avg = (group[:, None] == group[None, :]).float() / (c // g)
        self.register_buffer("group_avg", avg[:, :, None, None])  # as a 1x1 conv weight
        self.weight = nn.Parameter(gn.weight.detach().clone()) if gn.affine else None
        self.bias = nn.Parameter(gn.bias.detach().clone()) if gn.affine else None
        self.eps = gn.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = F.conv2d(spatial_mean(x), self.group_avg)
        centred = x - mean
        var = F.conv2d(spatial_mean(centred * centred), self.group_avg)
        x = centred * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            x = x * self.weight[:, None, None] + self.bias[:, None, None]
        return x


def deploy_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every GroupNorm replaced; the original is untouched."""
    model = copy.deepcopy(model).eval()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.GroupNorm):
                if child.num_channels % child.num_groups:
                    raise ValueError(f"{name}.{child_name}: groups of unequal size are not supported")
                setattr(module, child_name, GroupNormNoReshape(child))
    return model
