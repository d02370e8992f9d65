"""Grad-CAM and Score-CAM at a residual block: equal to pytorch-grad-cam's (before its resizing and
scaling) on our ResNets and timm's, targets, shapes, one forward + one backward for many blocks,
nothing left on the model, and thread safety on one shared model."""
import copy

import numpy as np
import pytest
import timm
import torch

from pytorch_grad_cam import GradCAM, ScoreCAM          # the reference (requirements-dev.txt)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from blocks import attention_resnet, grad_cam, grad_cams, residual_blocks, score_cam
from conftest import in_threads, randomize_batchnorm

TOL = 1e-5


class _Raw:
    """pytorch-grad-cam's map per target layer before `scale_cam_image` (resize + min-max):
    ReLU(get_cam_image(activations, gradients)), as its `compute_cam_per_layer` computes it."""

    def compute_cam_per_layer(self, input_tensor, targets, eigen_smooth):
        acts = [a.cpu().numpy() for a in self.activations_and_grads.activations]
        grads = [g.cpu().numpy() for g in self.activations_and_grads.gradients] or [None] * len(acts)
        return [np.maximum(self.get_cam_image(input_tensor, layer, targets, a, g, eigen_smooth), 0)
                for layer, a, g in zip(self.target_layers, acts, grads)]

    def aggregate_multi_layers(self, cams):
        return cams[0]


class RawGradCAM(_Raw, GradCAM):
    pass


class RawScoreCAM(_Raw, ScoreCAM):
    pass


def reference(method, model, x, block, target=None) -> torch.Tensor:
    """The library's map on a copy (it calls eval(), keeps hooks and fills .grad on its model)."""
    model = copy.deepcopy(model)
    targets = None if target is None else [ClassifierOutputTarget(int(t)) for t in target]
    with method(model, [model.get_submodule(block)]) as cam:
        return torch.from_numpy(cam(x, targets))


def tiny(depth: int, kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(attention_resnet(depth, kind, num_classes=10, width=8, ratio=4), seed).eval()


def image(batch: int = 2, size: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def assert_library_equal(ours, ref):
    assert ours.shape == ref.shape
    assert ref.max() > 1e-3                                        # a map, not all zeros
    diff = float((ours - ref).abs().max())
    assert diff <= TOL and diff <= TOL * float(ref.max()), (diff, float(ref.max()))  # absolute, and of the peak


@pytest.mark.slow
@pytest.mark.parametrize("depth", [18, 50])
def test_grad_cam_equals_pytorch_grad_cam_on_our_resnets(depth, kind):
    model, x = tiny(depth, kind), image()
    assert_library_equal(grad_cam(model, x, "layer3.1"), reference(RawGradCAM, model, x, "layer3.1"))
    assert_library_equal(grad_cam(model, x, "layer2.0", target=[3, 7]),
                         reference(RawGradCAM, model, x, "layer2.0", [3, 7]))


@pytest.mark.parametrize("depth", [18, pytest.param(50, marks=pytest.mark.slow)])  # 50: 128 masked forwards
def test_score_cam_equals_pytorch_grad_cam_on_our_resnets(depth, kind):
    model, x = tiny(depth, kind), image()
    assert_library_equal(score_cam(model, x, "layer3.1"), reference(RawScoreCAM, model, x, "layer3.1"))


@pytest.mark.slow                                      # full width: 256 masked forwards per image
def test_both_equal_pytorch_grad_cam_on_timm_seresnet18():
    torch.manual_seed(0)
    # random BatchNorms: timm zero-initialises each block's last one, which would silence SE
    model, x = randomize_batchnorm(timm.create_model("seresnet18", pretrained=False, num_classes=5)).eval(), image()
    assert residual_blocks(model) == [f"layer{s}.{i}" for s in range(1, 5) for i in range(2)]
    assert_library_equal(grad_cam(model, x, "layer3.1"), reference(RawGradCAM, model, x, "layer3.1"))
    assert_library_equal(grad_cam(model, x, "layer3.1", 1), reference(RawGradCAM, model, x, "layer3.1", [1, 1]))
    x = x[:1]
    assert_library_equal(score_cam(model, x, "layer3.1"), reference(RawScoreCAM, model, x, "layer3.1"))


def test_frozen_parameters_give_the_same_map_and_stay_frozen():
    """With no parameter requiring grad, the hooked activation is made a leaf that does, so the
    attention scales after it run out of place and autograd sees the whole path to the logits."""
    model, x = tiny(18, "cbam"), image()
    ref = reference(RawGradCAM, model, x, "layer2.1")
    model.requires_grad_(False)
    assert_library_equal(grad_cam(model, x, "layer2.1"), ref)
    assert not any(p.requires_grad for p in model.parameters())


def test_default_target_is_the_top_prediction_and_targets_are_per_image():
    model, x = tiny(18, "se"), image(3)
    with torch.no_grad():
        top = model(x).argmax(1)
    default = grad_cam(model, x, "layer3.0")
    assert torch.equal(default, grad_cam(model, x, "layer3.0", top))
    assert torch.equal(default, grad_cam(model, x, "layer3.0", top.tolist()))
    other = [(t + 1) % 10 for t in top.tolist()]
    explicit = grad_cam(model, x, "layer3.0", other)
    assert (explicit - default).abs().max() > 1e-3               # another class, another map
    for i, t in enumerate(other):                                # image i of the batch = image i alone
        torch.testing.assert_close(explicit[i], grad_cam(model, x[i:i + 1], "layer3.0", t)[0], rtol=1e-5, atol=1e-6)
    same = grad_cam(model, x, "layer3.0", 2)
    assert torch.equal(same, grad_cam(model, x, "layer3.0", [2, 2, 2]))


def test_shapes_are_the_blocks_resolution_and_maps_are_relud():
    model, x = tiny(18, "eca"), image(2, 64)
    blocks = residual_blocks(model)
    assert blocks == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    cams = grad_cams(model, x, blocks)
    assert list(cams) == blocks
    for name, cam in cams.items():
        side = 64 // {"1": 4, "2": 8, "3": 16, "4": 32}[name[5]]
        assert cam.shape == (2, side, side) and cam.dtype == torch.float32
        assert cam.min() >= 0 and cam.max() > 0
    assert score_cam(model, x, "layer4.1").shape == (2, 2, 2)


def test_many_blocks_take_one_forward_and_one_backward_and_equal_one_at_a_time():
    model, x = tiny(50, "cbam"), image(2)
    blocks = residual_blocks(model)
    assert len(blocks) == 16
    forwards, backwards = [], []
    handles = [model.register_forward_pre_hook(lambda *a: forwards.append(1)),
               model.fc.register_full_backward_hook(lambda *a: backwards.append(1))]
    try:
        cams = grad_cams(model, x, blocks, target=[1, 2])
    finally:
        for h in handles:
            h.remove()
    assert (len(forwards), len(backwards)) == (1, 1)
    for name in ("layer1.0", "layer3.4", "layer4.2"):
        torch.testing.assert_close(cams[name], grad_cam(model, x, name, [1, 2]), rtol=1e-5, atol=1e-6)


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(m._backward_pre_hooks) for m in model.modules())


def test_nothing_is_left_on_the_model_after_success_or_failure():
    model, x = tiny(18, "cbam"), image()
    model.layer1.requires_grad_(False)                            # a mix: some frozen, some not
    flags = [p.requires_grad for p in model.parameters()]
    grad_cams(model, x, residual_blocks(model))
    score_cam(model, x, "layer4.1")
    with pytest.raises(RuntimeError):                             # fails inside the forward pass
        grad_cam(model, torch.randn(1, 4, 32, 32), "layer2.0")
    with pytest.raises(ValueError, match="class index from 0 to 9"):  # fails after it
        grad_cam(model, x, "layer2.0", 10)
    assert hooks(model) == 0
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


def test_the_model_runs_in_its_mode_and_inference_tensors_are_accepted():
    model = tiny(18, "se").train()
    with torch.inference_mode():
        x = image()
    assert grad_cam(model, x, "layer2.1").shape == (2, 8, 8)
    assert model.training and all(m.training for m in model.modules())


@pytest.mark.slow
def test_one_shared_model_serves_8_threads_each_its_own_image():
    model = tiny(18, "cbam")
    images = [image(1, 32, seed) for seed in range(8)]
    serial = [(grad_cam(model, x, "layer2.1"), score_cam(model, x, "layer1.0")) for x in images]
    for i in range(8):                                 # a mix-up between images would be caught
        for j in range(i):
            assert (serial[i][0] - serial[j][0]).abs().max() > 1e-4
            assert (serial[i][1] - serial[j][1]).abs().max() > 1e-4
    results, errors = [[] for _ in images], []

    def work(i):
        try:
            for call in range(25):
                results[i].append((0, grad_cam(model, images[i], "layer2.1")) if call % 5 else
                                  (1, score_cam(model, images[i], "layer1.0")))
        except Exception as error:                     # noqa: BLE001 -- reported below
            errors.append(error)

    in_threads(work)
    assert not errors, errors
    for i, calls in enumerate(results):
        assert len(calls) == 25
        for method, cam in calls:
            torch.testing.assert_close(cam, serial[i][method], rtol=1e-5, atol=1e-6)
    assert hooks(model) == 0 and all(p.grad is None for p in model.parameters())


def test_bad_blocks_and_targets_are_value_errors_naming_the_valid_ones():
    model, x = tiny(18, "eca"), image()
    with pytest.raises(ValueError, match=r"'layer5\.0'; blocks: layer1\.0, layer1\.1, .*layer4\.1$"):
        grad_cam(model, x, "layer5.0")
    with pytest.raises(ValueError, match="'layer3.1.attn'"):      # the attention module, not the block
        score_cam(model, x, "layer3.1.attn")
    with pytest.raises(ValueError, match="non-empty list"):
        grad_cams(model, x, "layer3.1")
    for bad in (-1, 10, 1.5, True, [1], [1, 2, 3], [[1, 2]], ["a", "b"], torch.tensor([0.0, 1.0])):
        with pytest.raises(ValueError, match=r"top prediction.*0 to 9.*list of 2"):
            grad_cam(model, x, "layer3.1", bad)
    with pytest.raises(ValueError, match="0 to 9"):
        score_cam(model, x, "layer3.1", 10)
    with pytest.raises(ValueError, match="batch_size"):
        score_cam(model, x, "layer3.1", batch_size=0)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        grad_cam(model, x[0], "layer3.1")
