"""What reading a user's checkpoint in a child process costs, beside reading it in the server.

    python -m bench.checkpoint_load [--runs 7]

Interleaved rounds (`bench.timing`): the same upload's bytes loaded into a ready model by the old
path (parsed in this process: `read_checkpoint`, then the strict build) and by the new one
(`pretrained.load(bytes)`: parsed in a child forked from the fork server, under limits, tensors
back as safetensors, then the same build). Two files: the bundled CBAM-ResNet-18 (fp16 safetensors, 1.5 MB) and a
CBAM-ResNet-50 saved by `torch.save` (fp32, 113 MB). Target (issue #22): at most 1 s more.
The fork server is started by the warm-up rounds, as `serve.py` starts it before the first visitor.
"""
import argparse
import io

import torch

import pretrained
from blocks import attention_resnet
from pretrained.architecture import model_from_state_dict
from pretrained.checkpoint import read_checkpoint

from .timing import interleaved


def files() -> dict[str, bytes]:
    bundled = next(e.path for e in pretrained.available() if e.name == pretrained.DEFAULT_MODEL).read_bytes()
    buf = io.BytesIO()
    torch.manual_seed(0)
    torch.save(attention_resnet(50, "cbam").state_dict(), buf)
    return {"CBAM-ResNet-18 shapes, 1.5 MB safetensors": bundled, "CBAM-ResNet-50, 113 MB torch.save": buf.getvalue()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for name, data in files().items():
        timings = interleaved({"in process": lambda: model_from_state_dict(read_checkpoint(data).state_dict),
                               "isolated": lambda: pretrained.load(data, name="upload")}, runs=args.runs, warmup=2)
        before, after = timings.median("in process"), timings.median("isolated")
        print(f"{name} ({len(data) / 1e6:.1f} MB): in process {before:.3f} s, isolated {after:.3f} s; "
              f"isolated / in process = {timings.ratio('isolated', 'in process')}; "
              f"{after - before:+.3f} s (target <= +1 s)")


if __name__ == "__main__":
    main()
