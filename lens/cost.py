"""What one image through a model costs, counted without computing it: PyTorch's `FlopCounterMode`
over fake tensors (`FakeTensorMode`: shapes only, no memory for activations, no arithmetic).

A user's checkpoint chooses its own cost: its depth and width, a stem without its max-pool (4x the
work), an input of up to 1024 px (21x a 224-px one). `MAX_FORWARD_FLOPS` is what the app runs per
image for one visitor's model; an ImageNet ResNet-152 at 224 px needs 23 GFLOP (multiply-adds
counted twice, as `FlopCounterMode` does).
"""
import threading
import weakref

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

MAX_FORWARD_FLOPS = 100e9           # per image: about 1.5 s of one core here; Grad-CAM costs about 3x that
_counted: "weakref.WeakKeyDictionary[nn.Module, dict[int, int]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def forward_flops(model: nn.Module, input_size: int) -> int:
    """FLOPs of one `input_size` x `input_size` image through `model` (eval mode), counted once per
    model and size."""
    with _lock:
        known = _counted.setdefault(model, {})
        if input_size not in known:
            with FakeTensorMode(allow_non_fake_inputs=True), FlopCounterMode(display=False) as counter, \
                    torch.no_grad():
                model(torch.empty(1, 3, input_size, input_size))
            known[input_size] = counter.get_total_flops()
        return known[input_size]


def too_costly(model: nn.Module, input_size: int) -> str:
    """Why the app will not run `model` at `input_size` ('' when it will)."""
    flops = forward_flops(model, input_size)
    if flops <= MAX_FORWARD_FLOPS:
        return ""
    return (f"At {input_size} px this model needs {flops / 1e9:,.0f} GFLOP per image; this server runs at most "
            f"{MAX_FORWARD_FLOPS / 1e9:.0f} (an ImageNet ResNet-152 at 224 px needs 23). Choose a smaller input "
            "size under \"How this checkpoint sees images\".")
