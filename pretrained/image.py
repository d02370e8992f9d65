"""Untrusted image bytes -> an RGB PIL image, or an `ImageError` that says what is wrong.

Checks the content, never the file name: only the allowed formats are opened, the pixel count is
checked from the header before any pixel is decoded (decompression bombs), animations give their
first frame (and say so: `frames_note`), EXIF orientation is applied, and every mode (CMYK, 16-bit,
float, palette, alpha, grayscale, 1-bit) becomes 8-bit RGB with its full range kept.

Everything that parses the file's bytes runs inside one boundary: whatever a format plugin raises
on bytes it does not expect (IndexError, struct.error, KeyError, ...) is the file's fault and
becomes a short `ImageError`, and so does running out of memory or out of time.

Cost is bounded before decoding, from the header: the bytes a decode will hold (`_peak_bytes`: PIL
keeps 1, 2 or 4 bytes a pixel and 8 a row, then `to_rgb` makes its copies; a progressive JPEG keeps
all of its coefficients) at most `DECODE_BYTES`; a JPEG's scan count at most `MAX_SCANS`; and the
wall-clock time at most `DECODE_SECONDS` (every read of the file checks it). Large images (over
`LARGE_PIXELS`) are decoded reduced where the format allows (JPEG's DCT scaling, `Image.draft`, so a
JPEG may have up to `JPEG_MAX_PIXELS`), else reduced by a whole factor before any conversion
multiplies their bytes, and decodes that hold more than `LARGE_BYTES` take one of `LARGE_DECODES`'
slots: at most two at once in the process, and one per owner (`decoding_for`, one visitor).
"""
import contextlib
import contextvars
import io
import math
import re
import threading
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")   # JPEG covers phones' MPO files
MAX_PIXELS = 50_000_000          # 50 MP, for images decoded at their full size (all but JPEG); 8K video is 33 MP
JPEG_MAX_PIXELS = 200_000_000    # decoded reduced (1/2 to 1/8 while decoding): a 200 MP phone photo at 1/4 is 12.5 MP
BACKGROUND = (255, 255, 255)     # what transparent pixels are shown on
LARGE_PIXELS = 16_000_000        # larger images are reduced while decoding: a model sees at most 1024 px
LARGE_BYTES = 2 ** 27            # 128 MiB: decodes holding more take a slot; a 16 MP RGB photo (decoded
                                 # and its RGB copy, 4 bytes a pixel each) holds 128 MB
DECODE_BYTES = 500_000_000       # the most one decode may hold: a 50 MP image of any mode holds at most 300 MB,
                                 # a 50 MP progressive JPEG (coefficients, then the image at 1/2) 400 MB
MAX_SCANS = 500                  # a progressive JPEG from libjpeg has 10 scans, tuned encoders a few dozen;
                                 # every scan is a pass over the whole image
DECODE_SECONDS = 10.0            # wall clock for one decode, and for the wait for a slot
HIGH_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_SCAN_READ = 1024                # a multi-scan JPEG is read in blocks this small: one 14-byte scan can cost
                                 # a pass over every block of the image, and the clock is checked per read
_BLOCK_PIXELS = 1 << 20          # high-bit data is scaled in blocks of this many pixels, never copied whole


class ImageError(ValueError):
    """An upload that is not a usable image, with a message a user can act on."""


class _OutOfTime(Exception):
    """A decode ran past its deadline (raised from a read of the file, so no plugin catches it)."""


class DecodeSlots:
    """At most `n` large decodes at once, and at most one per owner: an owner's second large decode
    waits for its first, so one visitor cannot hold every slot."""

    def __init__(self, n: int):
        self._free = n
        self._owners: set[str] = set()
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, owner: str | None, seconds: float) -> Iterator[None]:
        """A slot for `owner` (None: no owner, only the global count applies), waited for at most `seconds`."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._free > 0 and owner not in self._owners, seconds):
                raise ImageError("the server is busy decoding other large images -- please try again in a minute")
            self._free -= 1
            if owner is not None:
                self._owners.add(owner)
        try:
            yield
        finally:
            with self._changed:
                self._free += 1
                self._owners.discard(owner)
                self._changed.notify_all()


LARGE_DECODES = DecodeSlots(2)   # large decodes at once, process-wide
_OWNER: contextvars.ContextVar[str | None] = contextvars.ContextVar("pretrained_image_owner", default=None)


@contextlib.contextmanager
def decoding_for(owner: str) -> Iterator[None]:
    """Decodes inside this block are `owner`'s (the app: one visitor's script run): `owner` holds at
    most one of `LARGE_DECODES`' slots at a time; its next large decode waits for its own first."""
    token = _OWNER.set(owner)
    try:
        yield
    finally:
        _OWNER.reset(token)


class _Clocked(io.BytesIO):
    """The file's bytes, read against a deadline: a read after it raises `_OutOfTime`."""

    def __init__(self, data: bytes, seconds: float):
        super().__init__(data)
        self.restart(seconds)

    def restart(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise _OutOfTime

    def read(self, size: int | None = -1) -> bytes:
        self.check()
        return super().read(size)


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS, seconds: float = DECODE_SECONDS) -> Image.Image:
    """The first frame of an uploaded file as 8-bit RGB, or an `ImageError` saying why not.

    `max_pixels` bounds images decoded at their full size; JPEGs, decoded reduced, may have up to
    `JPEG_MAX_PIXELS`. `seconds` bounds the decode's wall-clock time, and the wait for a slot."""
    if not data:
        raise ImageError("the file is empty")
    try:        # no warnings.catch_warnings here: it swaps the process's filters, which other threads share
        return _decode(data, max_pixels, seconds)
    except ImageError:
        raise
    except _OutOfTime:
        raise ImageError(f"the image took more than {seconds:g} s to decode, so it was stopped; "
                         f"open it in an image editor and save it again") from None
    except UnidentifiedImageError as e:
        raise ImageError(f"not an image in a supported format ({', '.join(FORMATS)})") from e
    except Image.DecompressionBombError as e:
        raise ImageError(f"the image is larger than the {_plain(max_pixels / 1e6)} MP limit -- "
                         f"please downscale it") from e
    except MemoryError as e:
        raise ImageError("the image is too large to decode here (out of memory) -- please downscale it") from e
    except Exception as e:    # whatever a plugin raises on bytes it does not expect: the file's fault
        raise ImageError("the image file is damaged or truncated: part of its data is missing, "
                         "so it cannot be shown; open it in an image editor and save it again") from e


def _decode(data: bytes, max_pixels: int, seconds: float) -> Image.Image:
    """`decode_image`'s steps, every one of them on untrusted bytes: open, check the size, count the
    frames, bound the cost, then decode the pixels (in a slot if large; the wait is not decode time)."""
    file = _Clocked(data, seconds)
    image = _open(data, file)
    jpeg = image.format in ("JPEG", "MPO")
    _check_pixels(image.size, JPEG_MAX_PIXELS if jpeg else max_pixels)
    frames = getattr(image, "n_frames", 1)
    image.seek(0)                                                  # first frame of an animation
    coefficients = _jpeg_buffer_bytes(data, file) if jpeg else 0
    size = image.size
    if jpeg:
        _draft(image)
    if coefficients:
        image.decodermaxblock = _SCAN_READ
    factor = _factor(image.size)
    peak = coefficients + _peak_bytes(image, factor)
    _check_bytes(size, peak, coefficients > 0)
    if peak <= LARGE_BYTES:
        return _pixels(image, factor, frames)
    with LARGE_DECODES.hold(_OWNER.get(), seconds):
        file.restart(seconds)
        return _pixels(image, factor, frames)


def _pixels(image: Image.Image, factor: int, frames: int) -> Image.Image:
    """The opened `image` loaded, reduced by `factor`, turned upright and made RGB."""
    image.load()
    transposition = _UPRIGHT.get(image.getexif().get(_ORIENTATION))   # read before a reduced copy drops it
    image = _reduced(image, factor)
    if transposition is not None:
        image = image.transpose(transposition)
    image = to_rgb(image)
    image.info["frames"] = frames
    return image


def _open(data: bytes, file: _Clocked) -> Image.Image:
    """The image in `file`, identified by its content. A JPEG opens without Pillow's own ceiling
    (179 MP), since it is decoded reduced: `_check_pixels` applies ours."""
    Image.init()                                                   # register every format plugin
    factory, accept = Image.OPEN["JPEG"]
    if accept(data[:16]):
        return factory(file, None)
    return Image.open(file, formats=FORMATS[1:])


def _check_pixels(size: tuple[int, int], limit: int) -> None:
    width, height = size
    if width * height > limit:
        megapixels = _reads_over(width * height / 1e6, limit / 1e6)
        raise ImageError(f"the image is {width} x {height} pixels ({megapixels} MP); "
                         f"the limit is {_plain(limit / 1e6)} MP -- please downscale it")


def _check_bytes(size: tuple[int, int], peak: int, progressive: bool) -> None:
    if peak > DECODE_BYTES:
        width, height = size
        why = (" (a progressive JPEG keeps every coefficient while decoding: saved as a baseline JPEG "
               "it takes far less)" if progressive else "")
        raise ImageError(f"decoding this {width} x {height} image would take "
                         f"{_reads_over(peak / 1e6, DECODE_BYTES / 1e6)} MB of memory; the limit is "
                         f"{_plain(DECODE_BYTES / 1e6)} MB{why} -- please downscale it")


def _plain(value: float) -> str:
    """A number without trailing zeros: 50, 0.5, 12.345678."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _reads_over(value: float, limit: float) -> str:
    """`value` with the fewest decimals that still read as more than `limit` (50.1 MP over 50 MP)."""
    for decimals in range(6):
        text = f"{value:.{decimals}f}"
        if float(text) > limit:
            return text
    return f"{value:.6f}"


def _draft(image: Image.Image) -> None:
    """A JPEG over LARGE_PIXELS set to decode reduced (DCT scaling: 1/2 to 1/8, at least the target)."""
    factor = _factor(image.size)
    if factor > 1:
        width, height = image.size
        image.draft(image.mode, (width // factor, height // factor))


def _factor(size: tuple[int, int]) -> int:
    """The whole factor that brings an image to at most about LARGE_PIXELS (1 for smaller ones)."""
    width, height = size
    return math.ceil(math.sqrt(width * height / LARGE_PIXELS))


def _bytes(mode: str, size: tuple[int, int]) -> int:
    """What PIL holds for an image: 1, 2 or 4 bytes a pixel, and a pointer (8 bytes) a row."""
    width, height = size
    pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return (width * pixel + 8) * height


def _peak_bytes(image: Image.Image, factor: int) -> int:
    """What decoding `image` holds at its peak: the image as decoded, and at the reduced size the
    step `to_rgb` goes through and the RGB result (a reduced copy, a rotated one, are no larger)."""
    width, height = image.size
    out = (-(-width // factor), -(-height // factor))
    step = _step(image)
    return _bytes(image.mode, image.size) + (_bytes(step, out) if step else 0) + _bytes("RGB", out)


# JPEG markers: a segment starts with FF and a code that is not stuffing (00), fill (FF), or one of the
# codes that stand alone (TEM 01, RSTn D0-D7, SOI D8); EOI (D9) ends the image, SOS (DA) starts a scan.
_SEGMENT = re.compile(rb"\xff[^\x00\x01\xd0-\xd8\xff]")
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}     # DHT, JPG, DAC share the range
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


def _jpeg_segments(data: bytes, file: _Clocked) -> Iterator[tuple[int, bytes]]:
    """(code, payload) of each marker segment of a JPEG's first image, found as libjpeg finds them:
    by their lengths, and by a search for the next marker after a scan's entropy-coded data."""
    pos = 2
    while (found := _SEGMENT.search(data, pos)) is not None:
        file.check()
        code, pos = data[found.start() + 1], found.end()
        if code == 0xD9 or pos + 2 > len(data):
            return
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2:
            return
        yield code, data[pos + 2:pos + length]
        pos += length


def _jpeg_buffer_bytes(data: bytes, file: _Clocked) -> int:
    """The coefficient buffer libjpeg keeps for a progressive or multi-scan JPEG (0 for one scan):
    every 8 x 8 block of every component, padded to whole MCUs, 64 coefficients of 2 bytes. Refuses
    a file with more than MAX_SCANS scans: each is a pass over the image."""
    scans, frame, progressive = 0, b"", False
    for code, payload in _jpeg_segments(data, file):
        scans += code == 0xDA
        if code in _START_OF_FRAME and not frame:
            frame, progressive = payload, code in _PROGRESSIVE
    if scans > MAX_SCANS:
        raise ImageError(f"the JPEG has {scans} scans; encoders write at most a few dozen, and each one is "
                         f"a pass over the whole image (the limit is {MAX_SCANS}) -- please save it again")
    if not (progressive or scans > 1) or len(frame) < 6:
        return 0
    height, width = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big")
    sampling = [(frame[7 + 3 * i] >> 4, frame[7 + 3 * i] & 15) for i in range(frame[5])]
    h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
    blocks = 0
    for h, v in sampling:
        across, down = -(-width * h // (8 * h_max)), -(-height * v // (8 * v_max))
        blocks += -(-across // h) * h * -(-down // v) * v
    return blocks * 64 * 2


def _step(image: Image.Image) -> str | None:
    """The mode `to_rgb` goes through before RGB: L for high-bit data, RGBA for alpha that is not
    already RGBA (a palette's transparency included), none otherwise."""
    if image.mode in HIGH_BIT:
        return "L"
    if image.mode in ("LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        return "RGBA"
    return None


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """`image` made `factor` times smaller: box average; nearest for palette and 1-bit data, whose
    values do not average; high-bit data made 8-bit first (`reduce` takes no 16-bit data)."""
    if factor == 1:
        return image
    if image.mode in HIGH_BIT:
        image = _eight_bit(image)
    if image.mode in ("1", "P", "PA"):
        width, height = image.size
        return image.resize((max(1, width // factor), max(1, height // factor)), Image.Resampling.NEAREST)
    return image.reduce(factor)


_ORIENTATION = 0x0112
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,   # EXIF orientation -> what
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,     # shows the image upright
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,         # (as ImageOps.exif_transpose)
            8: Image.Transpose.ROTATE_90}


def frames_note(image: Image.Image) -> str:
    """For an animation decoded by `decode_image`, that only its first frame is used ('' otherwise)."""
    frames = image.info.get("frames", 1)
    return f"This is an animation of {frames} frames: the model sees only the first." if frames > 1 else ""


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, transparent areas on white, high-bit-depth data scaled rather than clipped."""
    step = _step(image)
    if step == "L":
        image = _eight_bit(image)
    elif step == "RGBA":
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, BACKGROUND)
        canvas.paste(image, mask=image)                            # its alpha band, without a copy of it
        return canvas
    return image.convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """High-bit-depth data as 8-bit grayscale: 16-bit data scaled from its full range (0-65535),
    32-bit integers and floats from their finite minimum and maximum (NaN shown as the minimum)."""
    lo, hi = (0.0, 65535.0) if image.mode.startswith("I;16") else _finite_range(image)
    scale = 255 / max(hi - lo, 1e-12)
    out = Image.new("L", image.size)
    for (left, top, _, _), values in _blocks(image):
        values = np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo)
        out.paste(Image.fromarray(np.clip((values - lo) * scale, 0, 255).round().astype(np.uint8)), (left, top))
    return out


def _finite_range(image: Image.Image) -> tuple[float, float]:
    lo, hi = math.inf, -math.inf
    for _, values in _blocks(image):
        finite = values[np.isfinite(values)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def _blocks(image: Image.Image) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray]]:
    """(box, float64 values) for blocks of about `_BLOCK_PIXELS` covering the image: memory for a
    block, not for a float copy of the whole image (8 bytes a pixel)."""
    width, height = image.size
    across = min(width, _BLOCK_PIXELS)
    down = max(1, _BLOCK_PIXELS // across)
    for top in range(0, height, down):
        for left in range(0, width, across):
            box = (left, top, min(left + across, width), min(top + down, height))
            yield box, np.asarray(image.crop(box), dtype=np.float64)
