"""Page times of the app with a CBAM-ResNet-50 at 224 px, as ratios to one bare forward pass.

    python -m bench.app_speed [--runs 10]

Drives app.py through Streamlit's AppTest (the server-side script run that builds the page, no
browser), with the model uploaded as the user's own checkpoint (random weights, ImageNet
layout). Interleaved per round: a bare forward pass; an upload of a new image to the finished
page; a display-control change (colormap) to the finished page. Prints ratios of medians.
Targets (issue #5): upload -> page <= 4x; control change -> page <= 1.5x. With Grad-CAM beside the
gate (issue #11): switching it on for a new image <= 3x; a control change with it shown <= 1.5x.
Also timed, without a target: opening Intervene (attention of the chosen block switched off) for
the image, with its maps: an edited forward pass and the edited Grad-CAM (the original's is cached).
Then, on the last image, the deletion/insertion panel (issue #20): its first computation, once, and
a control change with it shown, interleaved with forward passes (target <= 1.5x: it is kept).
"""
import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from blocks import attention_resnet

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def png(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((300, 400, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = attention_resnet(50, "cbam").eval()
    x = torch.randn(1, 3, 224, 224)

    at = AppTest.from_file(APP, default_timeout=300).run()
    at.selectbox(key="model").set_value("Your own checkpoint...").run()
    at.file_uploader(key="weights_0").set_value(("cbam_resnet50.safetensors", save(model.state_dict()),
                                                 "application/octet-stream"))
    at.file_uploader(key="image").set_value(("warmup.png", png(10_000), "image/png"))
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert any(m.value.startswith("Weights: **cbam\\_resnet50") for m in at.sidebar.markdown), at.info

    def forward():
        with torch.inference_mode():
            model(x)

    def upload(i):
        at.file_uploader(key="image").set_value((f"image{i}.png", png(i), "image/png"))
        at.run()

    def control(i):
        at.selectbox(key="cmap").set_value("viridis" if i % 2 else "jet").run()

    def grad_cam_on():
        at.toggle(key="show_cam").set_value(True).run()

    def grad_cam_off():
        at.toggle(key="show_cam").set_value(False).run()

    def view(name):
        at.segmented_control(key="view").set_value(name).run()

    times = {"forward": [], "upload": [], "control": [], "first_cam": [], "cam_control": [], "intervene": []}
    for i in range(args.runs):
        times["forward"].append(timed(forward))
        times["upload"].append(timed(lambda: upload(i)))
        times["control"].append(timed(lambda: control(i)))
        times["first_cam"].append(timed(grad_cam_on))                  # this image's first Grad-CAM
        times["cam_control"].append(timed(lambda: control(i + 1)))     # a control change with Grad-CAM shown
        grad_cam_off()
        times["intervene"].append(timed(lambda: view("Intervene")))   # gate_off, the default edit
        view("Block")
        assert not at.exception and not at.error
    first_faithfulness = timed(lambda: at.toggle(key="faithfulness").set_value(True).run())
    times["faithfulness_control"], times["forward_again"] = [], []
    for i in range(args.runs):
        times["forward_again"].append(timed(forward))
        times["faithfulness_control"].append(timed(lambda: control(i)))
        assert not at.exception and not at.error
    t = {k: statistics.median(v) for k, v in times.items()}
    print(f"CBAM-ResNet-50, 224 px, {torch.get_num_threads()} threads, medians of {args.runs} interleaved rounds: "
          f"forward {t['forward'] * 1e3:.0f} ms")
    print(f"  upload -> finished page  = {t['upload'] / t['forward']:.2f}x a forward pass (target <= 4)")
    print(f"  control change -> page   = {t['control'] / t['forward']:.2f}x a forward pass (target <= 1.5)")
    print(f"  Grad-CAM switched on, first for the image -> page = {t['first_cam'] / t['forward']:.2f}x (target <= 3)")
    print(f"  control change with Grad-CAM shown -> page = {t['cam_control'] / t['forward']:.2f}x (target <= 1.5)")
    print(f"  Intervene with its maps, first for the image -> page = {t['intervene'] / t['forward']:.2f}x")
    print(f"  deletion/insertion panel, first for the image -> page = {first_faithfulness / t['forward_again']:.0f}x "
          "(once)")
    print(f"  control change with the panel shown -> page = {t['faithfulness_control'] / t['forward_again']:.2f}x "
          "a forward pass (target <= 1.5)")


if __name__ == "__main__":
    main()
