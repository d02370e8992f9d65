"""decode_image under seeded mutation: every damaged file is an 8-bit RGB image or an ImageError with a
short message, never another exception (issue 22 found 125 of them across 11 formats)."""
import functools
import io
import random
import zlib

import numpy as np
import pytest
from PIL import Image

from pretrained.image import ImageError, decode_image

EXTREMES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF)
HEADER = 512          # "header fields" are overwritten within a file's first or last bytes (a TIFF's directory)
FAST, SLOW = 30, 1500 # cases per seed image: the fast suite, and the slow one


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)          # one set of seed files: no argument, one entry
def seeds() -> dict[str, bytes]:
    """Small valid files of every format the uploader takes, in the variants their plugins parse
    differently."""
    ramp = np.linspace(0, 255, 48 * 32 * 3).reshape(32, 48, 3).astype(np.uint8)
    rgb = Image.fromarray(ramp)
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "camera"
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return {
        "jpeg": encode(rgb, "JPEG", quality=85),
        "jpeg-progressive": encode(rgb, "JPEG", quality=85, progressive=True),
        "jpeg-exif-rotated": encode(rgb, "JPEG", exif=exif),
        "png": encode(rgb, "PNG"),
        "png-palette-transparent": encode(palette, "PNG", transparency=0),
        "png-16-bit": encode(Image.fromarray((ramp[..., 0].astype(np.uint16) * 257)), "PNG"),
        "webp": encode(rgb, "WEBP", quality=80),
        "webp-animated": encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50),
        "bmp": encode(rgb, "BMP"),
        "gif-animated": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
        "tiff": encode(rgb, "TIFF"),
        "tiff-lzw": encode(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-deflate-multipage": encode(frames[0], "TIFF", compression="tiff_adobe_deflate", save_all=True,
                                         append_images=frames[1:]),
        "tiff-float": encode(Image.fromarray(ramp[..., 0].astype(np.float32) / 7), "TIFF"),
    }


def chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each chunk of a PNG (length, type, data, CRC) or a WebP (RIFF: type, length,
    data), or of a JPEG's marker segments before its first scan; [] for other formats."""
    spans, pos = [], 0
    if data.startswith(b"\x89PNG"):
        pos = 8
        while pos + 12 <= len(data):
            spans.append((pos, min(len(data), end := pos + 12 + int.from_bytes(data[pos:pos + 4], "big"))))
            pos = end
    elif data.startswith(b"RIFF"):
        pos = 12
        while pos + 8 <= len(data):
            size = int.from_bytes(data[pos + 4:pos + 8], "little")
            spans.append((pos, min(len(data), end := pos + 8 + size + size % 2)))
            pos = end
    elif data.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
            spans.append((pos, min(len(data), end := pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big"))))
            pos = end
    return spans


def with_png_crcs(data: bytearray) -> bytearray:
    """Every whole PNG chunk's CRC made right again, so that the mutation reaches the parser."""
    for start, end in chunks(data):
        if end - start >= 12 and end - start == 12 + int.from_bytes(data[start:start + 4], "big"):
            data[end - 4:end] = zlib.crc32(data[start + 4:end - 4]).to_bytes(4, "big")
    return data


def mutate(data: bytes, rng: random.Random) -> bytes:
    """1 to 3 of: flipped bits, overwritten bytes, a truncation, a slice or a whole chunk duplicated
    or cut, a header field (2 or 4 bytes, either byte order) set to an extreme value; then, for half
    of the PNGs, their CRCs repaired."""
    d = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not d:
            break
        kind = rng.choice(("flip", "overwrite", "truncate", "duplicate", "cut", "chunk", "extreme"))
        i = rng.randrange(len(d))
        spans = chunks(d)
        if kind == "flip":
            d[i] ^= 1 << rng.randrange(8)
        elif kind == "overwrite":
            d[i:i + rng.randint(1, 8)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == "truncate":
            del d[i:]
        elif kind == "duplicate":
            chunk = d[i:i + rng.randint(1, 64)]
            at = rng.randrange(len(d) + 1)
            d[at:at] = chunk * rng.randint(1, 4)
        elif kind == "cut":
            del d[i:i + rng.randint(1, 64)]
        elif kind == "chunk" and spans:
            start, end = rng.choice(spans)
            if rng.random() < 0.5:
                del d[start:end]
            else:
                d[end:end] = d[start:end] * rng.randint(1, 3)
        else:
            width, order = rng.choice((2, 4)), rng.choice(("big", "little"))
            at = rng.randrange(min(len(d), HEADER))
            at = at if rng.random() < 0.5 else max(0, len(d) - 1 - at)
            d[at:at + width] = (rng.choice(EXTREMES) % 256 ** width).to_bytes(width, order)
    return bytes(with_png_crcs(d) if d.startswith(b"\x89PNG") and rng.random() < 0.5 else d)


def misbehaviours(name: str, cases: int) -> list[str]:
    """Each mutated case of seed `name` that decode_image neither decodes to 8-bit RGB nor refuses
    with a short ImageError."""
    found = []
    for case in range(cases):
        data = mutate(seeds()[name], random.Random(f"{name}/{case}"))
        try:
            out = decode_image(data)
        except ImageError as e:
            if not 0 < len(str(e)) <= 300:
                found.append(f"{name}/{case}: a {len(str(e))}-character message")
        except Exception as e:       # the very thing under test: anything but an ImageError
            found.append(f"{name}/{case}: {type(e).__name__}: {str(e)[:200]}")
        else:
            pixels = np.asarray(out)
            if out.mode != "RGB" or pixels.dtype != np.uint8 or pixels.ndim != 3 or min(out.size) < 1:
                found.append(f"{name}/{case}: decoded to {out.mode} {out.size}")
    return found


def test_every_seed_is_a_valid_image():
    for name, data in seeds().items():
        assert decode_image(data).mode == "RGB", name


@pytest.mark.filterwarnings("ignore")          # Pillow warns about much of what it reads here
@pytest.mark.parametrize("name", list(seeds()))
def test_mutated_files_decode_or_raise_image_error(name):
    assert misbehaviours(name, FAST) == []


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", list(seeds()))
def test_many_mutated_files_decode_or_raise_image_error(name):
    assert misbehaviours(name, SLOW) == []
