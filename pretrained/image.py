"""Untrusted image bytes -> an RGB PIL image, or an `ImageError` that says what is wrong.

Checks the content, never the file name: only the allowed formats are opened, the pixel count is
checked from the header before any pixel is decoded (decompression bombs), animations give their
first frame (and say so: `frames_note`), EXIF orientation is applied, and every mode (CMYK, 16-bit,
float, palette, alpha, grayscale, 1-bit) becomes 8-bit RGB with its full range kept.

Large images (over `LARGE_PIXELS`) are decoded reduced where the format allows (JPEG's DCT scaling,
`Image.draft`), else reduced by a whole factor in their own mode before any conversion multiplies
their bytes (a 1-bit PNG is 1 byte a pixel decoded, 3 as RGB, 8 as floats), and at most
`LARGE_DECODES` of them are decoded at once in the process: a 14 KB file can be a 50 MP image.
"""
import io
import math
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")   # JPEG covers phones' MPO files
MAX_PIXELS = 50_000_000          # 50 MP: larger than any phone photo; 8K video frames are 33 MP
BACKGROUND = (255, 255, 255)     # what transparent pixels are shown on
LARGE_PIXELS = 16_000_000        # larger images are reduced while decoding: a model sees at most 1024 px
LARGE_DECODES = threading.BoundedSemaphore(2)   # large decodes at once, process-wide


class ImageError(ValueError):
    """An upload that is not a usable image, with a message a user can act on."""


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    if not data:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.init()                                         # register every format plugin
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"the image is {width} x {height} pixels ({width * height / 1e6:.0f} MP); "
                                 f"the limit is {max_pixels / 1e6:.0f} MP -- please downscale it")
            image.seek(0)                                        # first frame of an animation
            if width * height > LARGE_PIXELS:
                with LARGE_DECODES:
                    image = _reduced(image)
            else:
                image.load()
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise ImageError(f"not an image in a supported format ({', '.join(FORMATS)})") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"the image is larger than the {max_pixels / 1e6:.0f} MP limit -- "
                         f"please downscale it") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError("the image file is damaged or truncated: part of its data is missing, "
                         "so it cannot be shown; open it in an image editor and save it again") from e
    frames = image.info.get("n_frames", getattr(image, "n_frames", 1))
    rgb = to_rgb(ImageOps.exif_transpose(image))
    rgb.info["frames"] = frames
    return rgb


def _reduced(image: Image.Image) -> Image.Image:
    """A large image decoded at about LARGE_PIXELS: JPEG scaled while decoding, others reduced by a
    whole factor (box average; nearest for palette and 1-bit data, whose values do not average)."""
    width, height = image.size
    factor = math.ceil(math.sqrt(width * height / LARGE_PIXELS))
    frames = getattr(image, "n_frames", 1)
    if image.format == "JPEG":
        image.draft(image.mode, (width // factor, height // factor))    # at least this size
    image.load()
    width, height = image.size
    factor = math.ceil(math.sqrt(width * height / LARGE_PIXELS))
    if factor > 1:
        size = (max(1, width // factor), max(1, height // factor))
        image = (image.resize(size, Image.Resampling.NEAREST) if image.mode in ("1", "P", "PA")
                 else image.reduce(factor))
    image.info["n_frames"] = frames
    return image


def frames_note(image: Image.Image) -> str:
    """For an animation decoded by `decode_image`, that only its first frame is used ('' otherwise)."""
    frames = image.info.get("frames", 1)
    return f"This is an animation of {frames} frames: the model sees only the first." if frames > 1 else ""


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, transparent areas on white, high-bit-depth data scaled rather than clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16"):
            lo, hi = 0.0, 65535.0
        else:
            lo, hi = float(values.min()), float(values.max())
        scaled = np.clip((values - lo) / max(hi - lo, 1e-12) * 255, 0, 255).round().astype(np.uint8)
        image = Image.fromarray(scaled, "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, BACKGROUND)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")
