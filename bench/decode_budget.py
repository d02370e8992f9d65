"""Decode budget: what hostile and odd images cost `pretrained.decode_image`, each in a fresh process.

    python -m bench.decode_budget [--scans 30000] [--timeout 600]

Per image: wall seconds, peak RSS growth (VmHWM of a fresh process just before and after the
decode: it sees C allocations, which tracemalloc does not; ru_maxrss would not do, Linux carries it
over from the parent through fork and exec) and the outcome (the RGB size, or the ImageError). The images (issue 22): a progressive JPEG whose one scan is repeated `--scans` times
(every scan is a pass over the whole image), the same with 490 scans (under the scan limit) at 24
and 96 MP, a 1 x 16,000,000 RGBA PNG (PIL keeps 8 bytes a row), a 15.9 MP float TIFF, an 8160 x
6144 phone JPEG (50.1 MP), a 20 MP 16-bit grayscale PNG, and an ordinary 12 MP photo beside them.
"""
import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import io, json, re, sys, time
from PIL import Image
from pretrained.image import ImageError, decode_image
def peak_kb():
    return int(re.search(r"VmHWM:\s*(\d+)", open("/proc/self/status").read()).group(1))
data = sys.stdin.buffer.read()
warm = io.BytesIO()
Image.new("RGB", (8, 8)).save(warm, "PNG")
decode_image(warm.getvalue())                  # plugins and numpy loaded before the measurement
before = peak_kb()
start = time.perf_counter()
try:
    out = decode_image(data)
    outcome = f"{out.mode} {out.width} x {out.height}"
except ImageError as e:
    outcome = f"ImageError: {e}"
seconds = time.perf_counter() - start
grew = (peak_kb() - before) / 1024
print(json.dumps({"seconds": seconds, "grew_mb": grew, "outcome": outcome}))
"""


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan of a well-formed JPEG: its SOS header and entropy-coded data."""
    scans, pos = [], 2
    while data[pos + 1] != 0xD9:
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if data[pos + 1] == 0xDA:
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
            scans.append((pos, end))
        pos = end
    return scans


def many_scan_jpeg(width: int, height: int, scans: int) -> bytes:
    """A valid progressive JPEG of a flat grey image whose first luma AC scan (a few bytes: one run of
    empty blocks) is repeated until the file has `scans` scans. libjpeg warns (the repeats do not
    refine anything) and decodes every one of them: a pass over all of the image's luma blocks."""
    data = encode(Image.new("RGB", (width, height), (120, 130, 140)), "JPEG", progressive=True, quality=90)
    found = jpeg_scans(data)
    start, end = next((a, b) for a, b in found if data[a + 4] == 1 and data[a + 7] > 0)   # 1 component, Ss > 0
    return data[:end] + data[start:end] * (scans - len(found)) + data[end:]


def images(scans: int) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (750, 1000, 3), dtype=np.uint8))
    gradient = np.tile(np.linspace(0, 65535, 5000).astype(np.uint16), (4000, 1))
    return {
        f"progressive JPEG 6000 x 4000, {scans} scans": many_scan_jpeg(6000, 4000, scans),
        "progressive JPEG 6000 x 4000, 490 scans": many_scan_jpeg(6000, 4000, 490),
        "progressive JPEG 12000 x 8000, 490 scans": many_scan_jpeg(12000, 8000, 490),
        "RGBA PNG 1 x 16,000,000": encode(Image.new("RGBA", (1, 16_000_000), (10, 20, 30, 200)), "PNG"),
        "float TIFF 3990 x 3990": encode(Image.fromarray(
            np.linspace(0, 1, 3990 * 3990, dtype=np.float32).reshape(3990, 3990)), "TIFF"),
        "phone JPEG 8160 x 6144": encode(noise.resize((8160, 6144)), "JPEG", quality=90),
        "16-bit PNG 5000 x 4000": encode(Image.fromarray(gradient), "PNG"),
        "photo JPEG 4000 x 3000": encode(noise.resize((4000, 3000), Image.Resampling.BICUBIC), "JPEG", quality=92),
    }


def measure(data: bytes, timeout: float) -> dict:
    """One decode in a fresh process: seconds, peak RSS growth (MB) and outcome."""
    try:
        run = subprocess.run([sys.executable, "-c", CHILD], input=data, capture_output=True,
                             timeout=timeout, cwd=ROOT, check=True)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "grew_mb": float("nan"), "outcome": f"still decoding after {timeout:g} s"}
    return json.loads(run.stdout.decode().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=30_000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    for name, data in images(args.scans).items():
        r = measure(data, args.timeout)
        print(f"{name:42s} {len(data) / 1e6:7.2f} MB file  {r['seconds']:7.2f} s  "
              f"+{r['grew_mb']:6.0f} MB RSS  {r['outcome'][:110]}", flush=True)


if __name__ == "__main__":
    main()
