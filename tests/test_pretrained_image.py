"""decode_image: untrusted bytes become 8-bit RGB, or an ImageError a user can act on."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrained import Preprocess
from pretrained.image import ImageError, decode_image, frames_note


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's calling card)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data,message", [
    (b"", "the file is empty"),
    (b"hello, I am a text file\n" * 10, "not an image in a supported format (JPEG, PNG, WEBP, BMP, GIF, TIFF)"),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not an image in a supported format"),
    (b"%PDF-1.4\n%...", "not an image in a supported format"),
    (png_header_only(8_000, 8_000), "the image is 8000 x 8000 pixels (64 MP); the limit is 50 MP -- please downscale it"),
    (png_header_only(100_000, 100_000), "the image is larger than the 50 MP limit -- please downscale it"),
])
def test_refused_with_a_message(data, message):
    with pytest.raises(ImageError) as info:
        decode_image(data)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(fmt):
    data = encode(Image.new("RGB", (64, 64), (10, 200, 30)), fmt)
    with pytest.raises(ImageError) as error:
        decode_image(data[: len(data) // 2])
    assert str(error.value) == ("the image file is damaged or truncated: part of its data is missing, so it "
                                "cannot be shown; open it in an image editor and save it again")   # no raw Pillow text


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_formats(fmt):
    out = decode_image(encode(Image.new("RGB", (20, 10), (200, 40, 40)), fmt))
    assert out.mode == "RGB" and out.size == (20, 10)
    assert np.abs(np.asarray(out, int)[5, 10] - [200, 40, 40]).max() <= 12   # lossy formats


def test_cmyk_jpeg():
    out = decode_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95))
    assert out.mode == "RGB" and np.abs(np.asarray(out, int)[4, 4] - [255, 0, 0]).max() <= 8


def test_16_bit_grayscale_is_scaled_not_clipped():
    pixels = np.array([[0, 32768, 65535]], dtype=np.uint16)
    out = decode_image(encode(Image.fromarray(pixels), "PNG"))
    assert np.asarray(out)[0, :, 0].tolist() == [0, 128, 255]


def test_transparency_is_shown_on_white():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 255, 0))
    rgba.putpixel((1, 0), (0, 0, 255, 255))
    assert np.asarray(decode_image(encode(rgba, "PNG"))).tolist() == [[[255, 255, 255], [0, 0, 255]]]
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    out = decode_image(encode(palette, "PNG", transparency=0))
    assert np.asarray(out).tolist() == [[[255, 255, 255], [255, 0, 0]]]
    assert decode_image(encode(Image.new("LA", (1, 1), (0, 0)), "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_grayscale_and_one_bit():
    assert decode_image(encode(Image.new("L", (3, 3), 77), "PNG")).getpixel((1, 1)) == (77, 77, 77)
    assert decode_image(encode(Image.new("1", (3, 3), 1), "BMP")).getpixel((1, 1)) == (255, 255, 255)


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))                 # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6                                          # rotate 90 degrees clockwise to view
    out = decode_image(encode(image, "JPEG", exif=exif, quality=95))
    assert out.size == (20, 40)
    assert np.asarray(out, int)[5, 10, 2] > 200 and np.asarray(out, int)[35, 10, 0] > 200   # blue on top


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    decoded = decode_image(data)
    assert decoded.getpixel((4, 4)) == (255, 0, 0)
    assert frames_note(decoded) == "This is an animation of 3 frames: the model sees only the first."
    assert frames_note(decode_image(encode(frames[0], "PNG"))) == ""


@pytest.mark.parametrize("size", [(1, 1), (1, 5000), (5000, 1)])
def test_degenerate_sizes_reach_the_model_input(size):
    out = decode_image(encode(Image.new("RGB", size, (1, 2, 3)), "PNG"))
    view = Preprocess(128, 1.0, "bilinear").view(out)
    assert view.size == (128, 128) and view.getpixel((64, 64)) == (1, 2, 3)


@pytest.mark.parametrize("size, caveat", [
    ((640, 480), ""), ((1920, 1080), ""), ((100, 100), ""),                  # ordinary photos: no note
    ((3000, 1000), "This image is 3000 x 1000 pixels: the square centre crop keeps only 29% of its length."),
    ((40, 40), "This image is 40 x 40 pixels: the model sees it enlarged 6 times, so it holds almost no detail."),
])
def test_caveat_says_what_resize_and_crop_cost(size, caveat):
    assert Preprocess(224, 0.875).caveat(Image.new("RGB", size)) == caveat


def one_bit_png(side: int) -> bytes:
    """A `side` x `side` 1-bit PNG, left half white: tiny on disk, `side`^2 bytes decoded."""
    image = Image.new("1", (side, side), 0)
    image.paste(1, (0, 0, side // 2, side))
    return encode(image, "PNG")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_large_image_is_decoded_reduced_with_its_content(fmt):
    image = Image.new("RGB", (6000, 4000), (250, 20, 20))
    image.paste((20, 20, 250), (3000, 0, 6000, 4000))                    # right half blue
    out = decode_image(encode(image, fmt, quality=90) if fmt == "JPEG" else encode(image, fmt))
    assert out.width * out.height <= 16_000_000 and out.width / out.height == pytest.approx(1.5, abs=0.01)
    assert out.width >= 2000                                              # far more than any model input
    left, right = np.asarray(out, int)[out.height // 2, [out.width // 4, 3 * out.width // 4]]
    assert np.abs(left - [250, 20, 20]).max() < 12 and np.abs(right - [20, 20, 250]).max() < 12


@pytest.mark.slow
def test_eight_near_cap_uploads_at_once_stay_within_the_memory_budget():
    """Eight sessions decoding a 14 KB, 7070 x 7070 1-bit PNG at the same time, to the model's view:
    peak RSS of the process grows by under 1 GB (measured in a fresh process)."""
    import subprocess
    import sys
    data = one_bit_png(7070)
    assert len(data) < 20_000
    code = ("import resource, sys, threading\n"
            "from pretrained import Preprocess, decode_image\n"
            "data = sys.stdin.buffer.read()\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "views = []\n"
            "def one():\n    views.append(Preprocess(224, 0.875).view(decode_image(data)))\n"
            "threads = [threading.Thread(target=one) for _ in range(8)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "assert len(views) == 8 and views[0].getpixel((10, 112)) == (255, 255, 255)\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    grew = int(out.stdout.decode().split()[-1])
    assert grew < 1024, f"8 decodes at once grew peak RSS by {grew} MB"
