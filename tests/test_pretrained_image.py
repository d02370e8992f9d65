"""decode_image: untrusted bytes become 8-bit RGB, or an ImageError a user can act on."""
import io
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.decode_budget import many_scan_jpeg, measure
from pretrained import Preprocess
from pretrained import image as image_module
from pretrained.image import DecodeSlots, ImageError, decode_image, decoding_for, frames_note, to_rgb


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def png_header_only(width: int, height: int, colour_type: int = 2) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's calling card); colour
    type 2 is RGB, 6 RGBA."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
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


@pytest.mark.slow
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
    code = ("import re, sys, threading\n"
            "from pretrained import Preprocess, decode_image\n"
            "def peak_kb():\n"          # not ru_maxrss: Linux carries it over from the parent (pytest)
            "    return int(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1))\n"
            "data = sys.stdin.buffer.read()\n"
            "before = peak_kb()\n"
            "views = []\n"
            "def one():\n    views.append(Preprocess(224, 0.875).view(decode_image(data)))\n"
            "threads = [threading.Thread(target=one) for _ in range(8)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "assert len(views) == 8 and views[0].getpixel((10, 112)) == (255, 255, 255)\n"
            "print((peak_kb() - before) // 1024)")
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    grew = int(out.stdout.decode().split()[-1])
    assert grew < 1024, f"8 decodes at once grew peak RSS by {grew} MB"


# Issue 22: every failure is an ImageError; a time and memory budget per decode; large valid images decoded.

DAMAGED = "the image file is damaged or truncated"


def three_frame_gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


@pytest.mark.parametrize("into", [1, 4, 9, 12, 18])   # into its graphic control block, its descriptor, its data
def test_a_gif_whose_second_frame_header_is_cut_is_damaged(into):
    data = three_frame_gif()
    second = data.index(b"\x21\xf9", data.index(b"\x2c"))    # the 2nd frame's graphic control extension
    with pytest.raises(ImageError, match=DAMAGED):             # was IndexError or struct.error (n_frames)
        decode_image(data[:second + into])


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_tiff_whose_next_page_is_missing_is_damaged():
    data = encode(Image.new("RGB", (16, 8), (255, 0, 0)), "TIFF")
    ifd = struct.unpack("<I", data[4:8])[0]
    next_page = ifd + 2 + 12 * struct.unpack("<H", data[ifd:ifd + 2])[0]
    data = data[:next_page] + struct.pack("<I", len(data) + 4096) + data[next_page + 4:]
    with pytest.raises(ImageError, match=DAMAGED):             # was TypeError: Missing dimensions
        decode_image(data)


def test_an_exif_tag_of_an_unexpected_type_does_not_stop_the_rotation():
    """SampleFormat (0x0153) stored as text: exif_transpose failed to write it back (struct.error)."""
    def entry(tag, kind, count, value):
        return struct.pack(">HHI", tag, kind, count) + value
    exif = (b"Exif\0\0MM\0*\0\0\0\x08\0\x02" + entry(0x0112, 3, 1, b"\0\x06\0\0")
            + entry(0x0153, 2, 4, b"cam\0") + b"\0\0\0\0")
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))                   # left half blue
    out = decode_image(encode(image, "JPEG", exif=exif, quality=95))
    assert out.size == (20, 40) and np.asarray(out, int)[5, 10, 2] > 200    # upright: blue on top


def test_running_out_of_memory_is_an_image_error(monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(Image.Image, "convert", no_memory)
    with pytest.raises(ImageError, match=r"^the image is too large to decode here \(out of memory\)"):
        decode_image(encode(Image.new("RGB", (8, 8)), "PNG"))


def jpeg_sized(width: int, height: int, progressive: bool = False) -> bytes:
    """A small JPEG whose frame header claims width x height pixels."""
    data = bytearray(encode(Image.new("RGB", (16, 16)), "JPEG", progressive=progressive))
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("data,message", [
    (png_header_only(8160, 6144), "the image is 8160 x 6144 pixels (50.1 MP); the limit is 50 MP -- please downscale it"),
    (png_header_only(10_000, 5_001), "the image is 10000 x 5001 pixels (50.01 MP); the limit is 50 MP"),
    (png_header_only(50_000_001, 1), "the image is 50000001 x 1 pixels (50.000001 MP); the limit is 50 MP"),
    (jpeg_sized(16_384, 16_384), "the image is 16384 x 16384 pixels (268 MP); the limit is 200 MP -- please downscale it"),
    (png_header_only(1, 40_000_000, colour_type=6),            # 4 + 8 bytes a row, then its RGB copy reduced by 2
     "decoding this 1 x 40000000 image would take 720 MB of memory; the limit is 500 MB -- please downscale it"),
    (jpeg_sized(16_320, 12_240, progressive=True),             # a 200 MP phone photo saved progressive
     "decoding this 16320 x 12240 image would take 699 MB of memory; the limit is 500 MB (a progressive "
     "JPEG keeps every coefficient while decoding: saved as a baseline JPEG it takes far less) -- please downscale it"),
], ids=["50.1 MP", "50.01 MP", "50.000001 MP", "268 MP JPEG", "thin RGBA", "progressive 200 MP JPEG"])
def test_a_limit_message_never_contradicts_itself(data, message):
    with pytest.raises(ImageError) as info:
        decode_image(data)
    assert str(info.value).startswith(message)


def test_a_200_mp_baseline_jpeg_is_decoded_at_a_quarter():
    out = decode_image(jpeg_sized(16_320, 12_240))             # libjpeg pads the missing data with grey
    assert out.size == (4080, 3060)


@pytest.mark.slow
def test_a_50_mp_phone_jpeg_is_decoded_reduced():
    image = Image.new("RGB", (8160, 6144), (250, 20, 20))
    image.paste((20, 20, 250), (4080, 0, 8160, 6144))          # right half blue
    out = decode_image(encode(image, "JPEG", quality=90))      # was: "(50 MP); the limit is 50 MP"
    assert out.size == (4080, 3072)                            # DCT-scaled by 2 while decoding
    left, right = np.asarray(out, int)[1536, [1020, 3060]]
    assert np.abs(left - [250, 20, 20]).max() < 12 and np.abs(right - [20, 20, 250]).max() < 12


def test_a_20_mp_16_bit_png_is_reduced_with_its_full_range():
    ramp = np.tile(np.linspace(0, 65535, 5000).round().astype(np.uint16), (4000, 1))
    out = decode_image(encode(Image.fromarray(ramp), "PNG"))   # was "damaged": reduce() takes no I;16
    assert out.size == (2500, 2000)
    row = np.asarray(out, int)[1000, :, 0]
    assert row[0] == 0 and row[-1] == 255 and abs(row[1250] - 128) <= 1 and (np.diff(row) >= 0).all()


def test_float_data_is_scaled_from_its_finite_range():
    values = np.array([[np.nan, 0.0, 0.5, 1.0, np.inf, -np.inf]], dtype=np.float32)
    assert np.asarray(to_rgb(Image.fromarray(values)))[0, :, 0].tolist() == [0, 0, 128, 255, 255, 0]


@pytest.fixture
def slots(monkeypatch) -> DecodeSlots:
    """Two fresh large-decode slots, and every decode counted as large."""
    fresh = DecodeSlots(2)
    monkeypatch.setattr(image_module, "LARGE_DECODES", fresh)
    monkeypatch.setattr(image_module, "LARGE_BYTES", 0)
    return fresh


def held(slots: DecodeSlots, owner: str | None) -> threading.Event:
    """A slot held by `owner` on another thread until the returned event is set."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with slots.hold(owner, 5):
            taken.set()
            release.wait(10)
    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return release


SMALL = encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG")
BUSY = r"^the server is busy decoding other large images -- please try again"


def test_one_owner_holds_at_most_one_slot(slots):
    release = held(slots, "alice")
    with decoding_for("alice"):                                # one slot is free, but not for her
        with pytest.raises(ImageError, match=BUSY):
            decode_image(SMALL, seconds=0.2)
    with decoding_for("bob"):                                  # another visitor gets it at once
        assert decode_image(SMALL, seconds=0.2).getpixel((0, 0)) == (1, 2, 3)
    assert decode_image(SMALL, seconds=0.2).size == (8, 8)     # no owner: the global count only
    second = {}

    def alice_again():
        with decoding_for("alice"):
            second["image"] = decode_image(SMALL, seconds=5)
    waiting = threading.Thread(target=alice_again)
    waiting.start()
    time.sleep(0.2)
    assert "image" not in second                               # waiting for her own first decode
    release.set()
    waiting.join(5)
    assert second["image"].size == (8, 8)


def test_the_wait_for_a_slot_is_bounded(slots):
    releases = [held(slots, "alice"), held(slots, "bob")]
    start = time.perf_counter()
    with decoding_for("carol"), pytest.raises(ImageError, match=BUSY):
        decode_image(SMALL, seconds=0.3)
    assert 0.25 < time.perf_counter() - start < 3
    for release in releases:
        release.set()


def test_decoding_for_sets_the_owner_for_its_block_only():
    assert image_module._OWNER.get() is None
    with decoding_for("alice"):
        with decoding_for("bob"):
            assert image_module._OWNER.get() == "bob"
        assert image_module._OWNER.get() == "alice"
    assert image_module._OWNER.get() is None


def test_a_thin_image_is_decoded_in_a_slot(slots, monkeypatch):
    """1 x 16,000,000 RGBA is 64 MB of pixels but 192 MB in PIL (8 bytes a row), twice with its RGB
    copy: by pixel count (not over 16 MP) it was decoded outside the slots."""
    releases = [held(slots, "alice"), held(slots, "bob")]
    monkeypatch.setattr(image_module, "LARGE_BYTES", 2 ** 27)  # the real threshold, the slots still fresh
    with pytest.raises(ImageError, match=BUSY):
        decode_image(png_header_only(1, 16_000_000, colour_type=6), seconds=0.2)
    for release in releases:
        release.set()


def test_a_jpeg_with_thousands_of_scans_is_refused_before_decoding():
    data = many_scan_jpeg(2000, 2000, 30_000)
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"^the JPEG has 30000 scans; .* \(the limit is 500\)"):
        decode_image(data)
    assert time.perf_counter() - start < 2                     # decoding it takes a minute
    assert decode_image(many_scan_jpeg(64, 64, 400)).size == (64, 64)   # under the limit: decoded


def test_a_decode_past_its_time_budget_is_stopped_and_frees_its_slot(slots):
    data = many_scan_jpeg(2048, 2048, 490)                     # about 0.5 s of scans
    start = time.perf_counter()
    assert decode_image(data).size == (2048, 2048)
    whole = time.perf_counter() - start
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"^the image took more than 0.05 s to decode, so it was stopped"):
        decode_image(data, seconds=0.05)
    assert time.perf_counter() - start < whole / 2
    with slots.hold("alice", 0), slots.hold("bob", 0):         # both slots free again
        pass


@pytest.mark.slow
def test_thin_and_float_images_cost_what_they_hold():
    """Peak RSS growth of one decode in a fresh process. Before: 870 MB for the 1 x 16,000,000 RGBA
    PNG (PIL's 8 bytes a row, then a copy from exif_transpose, convert("RGBA") of an RGBA image and
    its alpha channel beside the RGB canvas) and 486 MB for the 15.9 MP float TIFF (float64 copies)."""
    thin = measure(encode(Image.new("RGBA", (1, 16_000_000), (10, 20, 30, 200)), "PNG"), timeout=120)
    assert thin["outcome"] == "RGB 1 x 16000000" and thin["grew_mb"] < 420     # decoded 192 MB + RGB 192 MB
    values = np.linspace(0, 1, 3990 * 3990, dtype=np.float32).reshape(3990, 3990)
    floats = measure(encode(Image.fromarray(values), "TIFF"), timeout=120)
    assert floats["outcome"] == "RGB 3990 x 3990" and floats["grew_mb"] < 200  # 64 MB + L 16 MB + RGB 64 MB
