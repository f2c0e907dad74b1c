"""egeunet: EGE-UNet skin-lesion segmentation, from training to phone-class deployment."""

__version__ = "0.1.0"
