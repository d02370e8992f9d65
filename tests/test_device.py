"""One place decides where models run: `pretrained.resolve_device` (a GPU when there is one)."""
import numpy as np
import pytest
import torch

import pretrained
from lens import inspect_image


def test_the_default_device_is_a_gpu_when_there_is_one_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pretrained.resolve_device(None).type == expected
    assert pretrained.resolve_device("cpu") == torch.device("cpu")
    assert next(pretrained.load(pretrained.DEFAULT_MODEL).model.parameters()).device.type == expected


@pytest.mark.parametrize("device, message", [
    ("tpu", "unknown device 'tpu'; use 'cpu', 'cuda' or 'cuda:N'"),
    ("banana", "unknown device 'banana'"),
    ("meta", "device 'meta' is not supported; use 'cpu', 'cuda' or 'cuda:N'"),
])
def test_a_device_that_cannot_run_the_model_is_named(device, message):
    with pytest.raises(ValueError, match=message):
        pretrained.resolve_device(device)
    with pytest.raises(ValueError, match=message):
        pretrained.load(pretrained.DEFAULT_MODEL, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_on_a_machine_without_one_says_so():
    with pytest.raises(ValueError, match="'cuda' asked for, but this machine has no CUDA GPU that torch can use"):
        pretrained.resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_records_come_back_on_the_cpu_and_equal_the_cpu_run():
    cpu = inspect_image(pretrained.load(pretrained.DEFAULT_MODEL, device="cpu"), "assets/shapes-star.png")
    gpu = inspect_image(pretrained.load(pretrained.DEFAULT_MODEL, device="cuda"), "assets/shapes-star.png")
    assert gpu.capture.logits.device.type == "cpu"
    torch.testing.assert_close(gpu.capture.logits, cpu.capture.logits, atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(gpu.grad_cam("layer4.1").values, cpu.grad_cam("layer4.1").values, atol=1e-3)
