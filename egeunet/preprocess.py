"""The one preprocessing contract, shared by training, evaluation, every runtime and the
Android demo (which mirrors these functions in Kotlin and is checked against golden vectors).

Image in:  any decodable file -> RGB uint8 (EXIF orientation applied; grey, RGBA, palette
           and 16-bit images converted) -> resized to ``size`` x ``size`` with Pillow's
           BILINEAR filter (a triangle filter that widens with the scale factor, i.e.
           antialiased when shrinking; aspect ratio is *not* kept: the whole field of view is
           squeezed, as in the EGE-UNet protocol) -> ``(pixel - mean) / std`` per channel,
           mean and std in 0..255 units, computed on the training split and stored with the
           weights.
Mask out:  the model's ``size`` x ``size`` probability map is resized to the original
           image size with the same BILINEAR filter (on float32, no rounding) and
           thresholded: lesion where probability >= ``threshold``.

Unlike the official EGE-UNet code there is no per-image min-max scaling: a fixed affine
normalisation is what mobile runtimes (TFLite metadata, Core ML ImageType) can express,
and it lets an int8 model take raw uint8 pixels.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # what folders are scanned for


@dataclass(frozen=True)
class Preprocessing:
    size: int = 256
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    threshold: float = 0.5  # on probabilities; equivalently logits >= logit(threshold)

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values (R, G, B), got {self.mean} and {self.std}")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):  # NaN passes every comparison below
            raise ValueError(f"mean and std must be finite numbers, got {self.mean} and {self.std}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {self.threshold}")
        if self.size < 32 or self.size % 32:  # five 2x poolings, and the skips must meet their decoder maps
            raise ValueError(f"size must be a positive multiple of 32 (EGE-UNet halves it five times), got {self.size}")

    def threshold_on(self, output_kind: str) -> float:
        """The threshold on a model's raw output: :attr:`threshold` on probabilities ("probs"),
        its logit ``log(t / (1 - t))`` on logits ("logits"; 0.0 for the default 0.5)."""
        if output_kind == "probs":
            return self.threshold
        if output_kind == "logits":
            return math.log(self.threshold / (1.0 - self.threshold))
        raise ValueError(f"output kind must be 'logits' or 'probs', not {output_kind!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["resize"] = "PIL.Image.BILINEAR, aspect ratio not kept"
        d["layout"] = "RGB"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(
            size=int(d["size"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            threshold=float(d.get("threshold", 0.5)),
        )


def image_files_in(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` (recursive, sorted, by IMAGE_SUFFIXES), hidden files and
    folders skipped: macOS's ``._x.jpg`` resource forks, ``.git/``, ``.thumbnails/`` are never
    photos, and took calibration slots or failed a predict run as "unreadable"."""
    folder = Path(folder)
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))


class ImageReadError(ValueError):
    """A file that is not a readable image; the message names the file."""


# The largest image read_image decodes: 100 megapixels. Dermoscopy images reach ~30 MP (ISIC's
# largest are 6688x4459) and camera sensors ~100 MP, while predicting on 100 MP already holds
# ~1.5 GB (RGB, the float32 overlay and probability map at full size). A file that declares more
# is almost surely a decompression bomb (a few KB of PNG can declare 15000x15000): it is refused
# from its header, before decoding, like any unreadable file. Pillow's own guard (a warning
# above ~89 MP, an error above ~179 MP) is replaced by this one, so that legal images give no
# raw DecompressionBombWarning.
MAX_IMAGE_PIXELS = 100_000_000


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode any image file to an RGB uint8 array (H, W, 3), EXIF orientation applied."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_pixel_count(path, *im.size)
                im = ImageOps.exif_transpose(im)
                return to_rgb_uint8(im)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except Image.DecompressionBombError as e:  # more than Pillow's own limit: refused on opening
        raise ImageReadError(f"{path}: not a readable image (too large: {e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e.__class__.__name__}: {e})") from None


def _check_pixel_count(path: Path, width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageReadError(f"{path}: not a readable image (too large: {width}x{height} is "
                             f"{width * height / 1e6:.0f} megapixels, more than the {MAX_IMAGE_PIXELS / 1e6:.0f} "
                             "allowed; a guard against decompression bombs)")


def to_rgb_uint8(im: Image.Image) -> np.ndarray:
    """RGB uint8 from any Pillow mode: 16-bit and float greys are scaled down, not clipped;
    transparent pixels of RGBA / LA / palette images are composited on black."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        grey = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        top = 1.0 if a.max() <= 1.0 else 255.0
        grey = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        black = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(black, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def as_rgb_uint8(image) -> np.ndarray:
    """One in-memory image -> RGB uint8 (H, W, 3), what every runtime takes.

    Accepted: a PIL image of any mode (converted as :func:`read_image` converts files; its
    EXIF orientation is not applied: the pixels are taken as they are), or an array (H, W) or
    (H, W, 1) grey, (H, W, 3) RGB or (H, W, 4) RGBA (composited on black, as for files) of
    pixel values 0..255: uint8; another integer type with every value within 0..255; or
    float with every value within 0..255 (rounded to the nearest integer).

    Refused with a ValueError that names the problem, rather than a silently wrong mask: a
    batch (N, H, W, C), channels first (C, H, W), an empty image, a boolean array, values
    outside 0..255 (e.g. 16-bit pixels: scale them down first), NaN / infinity, and float
    images scaled to 0..1 (largest value in (0, 1]: multiply by 255 first)."""
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"empty image ({image.width}x{image.height} pixels)")
        return to_rgb_uint8(image)
    a = np.asarray(image)
    if a.ndim == 4:
        raise ValueError(f"expected one image (H, W, 3), got a batch of shape {a.shape}: predict one image at a time")
    if a.ndim == 3 and a.shape[2] not in (1, 3, 4):
        hint = ("; it looks channels-first (C, H, W): pass image.transpose(1, 2, 0)" if a.shape[0] in (1, 3, 4)
                else "")
        raise ValueError(f"expected an image (H, W, 3) (or grey (H, W), RGBA (H, W, 4)), got shape {a.shape}{hint}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W, 3) (or grey (H, W), RGBA (H, W, 4)), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"empty image (shape {a.shape})")
    if a.dtype != np.uint8:
        if a.dtype.kind not in "iuf":
            raise ValueError(f"expected pixel values 0..255 (uint8), got an array of {a.dtype}"
                             + (" (a boolean array is a mask, not an image)" if a.dtype == bool else ""))
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"image ({a.dtype}) holds NaN or infinite values")
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"pixel values must lie within 0..255, got {lo}..{hi} ({a.dtype}); scale the image "
                             "to 8 bits first (16-bit: (image / 257).round().astype(np.uint8))")
        if a.dtype.kind == "f":
            if 0 < hi <= 1:
                raise ValueError(f"float image with values within 0..1 ({a.dtype}, largest {hi}): egeunet takes "
                                 "pixels 0..255; pass (image * 255).round().astype(np.uint8)")
            a = np.rint(a)
        a = a.astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    if a.shape[2] == 4:
        return to_rgb_uint8(Image.fromarray(np.ascontiguousarray(a)))  # uint8 (H, W, 4): RGBA
    return a


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> (size, size, 3) with Pillow BILINEAR."""
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def resize_mask_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    """Ground-truth masks are resized with NEAREST so they stay binary."""
    if mask.shape[:2] == (size, size):
        return mask
    return np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))


def normalize(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 (..., 3) -> float32 (..., 3), ``(x - mean) / std`` per channel."""
    mean = np.asarray(pre.mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(pre.std, dtype=np.float32)
    return (image.astype(np.float32) - mean) * inv_std


def to_model_input(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """RGB uint8 image of any size (or any image :func:`as_rgb_uint8` takes) -> float32 NCHW
    (1, 3, size, size) ready for the network."""
    x = normalize(resize_image(as_rgb_uint8(image), pre.size), pre)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def probabilities_to_mask(prob: np.ndarray, original_hw: tuple[int, int], pre: Preprocessing) -> np.ndarray:
    """(size, size) probabilities -> boolean mask at the original (H, W)."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim != 2:
        raise ValueError(f"expected a 2-D probability map, got shape {prob.shape}")
    h, w = original_hw
    if prob.shape != (h, w):
        prob = np.asarray(Image.fromarray(prob).resize((w, h), Image.BILINEAR), dtype=np.float32)
    return prob >= pre.threshold


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float32)))
