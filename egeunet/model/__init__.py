"""EGE-UNet network, checkpoints and the shipped pretrained weights."""

from egeunet.model.egeunet import (
    EGEUNet,
    EGEUNetConfig,
    InferenceModel,
    count_conv_macs,
    count_parameters,
    egeunet,
)

__all__ = ["EGEUNet", "EGEUNetConfig", "InferenceModel", "count_conv_macs", "count_parameters", "egeunet"]
