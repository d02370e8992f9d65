"""Grad-CAM and Score-CAM at a residual block: equal to pytorch-grad-cam's (before its resizing and
scaling) on our ResNets and timm's, targets, shapes, one forward + one backward for many blocks,
Grad-CAM through an edited model, nothing left on the model, and thread safety on one shared model."""
import copy

import numpy as np
import pytest
import timm
import torch

from pytorch_grad_cam import GradCAM, ScoreCAM          # the reference (requirements-dev.txt)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from blocks import (Intervention, attention_resnet, capture_attention, grad_cam, grad_cams, interventions,
                    residual_blocks, score_cam, strongest_channels)
from conftest import KINDS, in_threads, randomize_batchnorm

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


class Ones(nn.Module):
    """A gate switched off for good: it outputs 1 wherever the sigmoid would output a weight."""

    def forward(self, z):
        return torch.ones_like(z)


class ChannelMask(nn.Module):
    def __init__(self, keep):                           # keep: [B, C] of 0 and 1
        super().__init__()
        self.keep = keep

    def forward(self, y):
        return y * self.keep[:, :, None, None]


def physically_edited(model: nn.Module, x: torch.Tensor, edit: Intervention) -> nn.Module:
    """A copy of `model` with `edit` built into it: gates replaced by `Ones`, or the attention
    module followed by a mask of its k highest-weighted channels (per image of `x`)."""
    edited = copy.deepcopy(model)
    attn = edited.get_submodule(edit.block).attn
    if edit.mode == "zero_top_k":
        weights = capture_attention(model, x).layer(edit.block).channel            # [B, C]
        keep = torch.ones_like(weights).scatter_(1, strongest_channels(weights, edit.k), 0)
        edited.get_submodule(edit.block).attn = nn.Sequential(attn, ChannelMask(keep))
        return edited
    stages = {"gate_off": ("channel", "spatial"), "channel_gate_off": ("channel",),
              "spatial_gate_off": ("spatial",)}[edit.mode]
    if not hasattr(attn, "channel"):                    # SE / ECA: one gate
        attn.gate = Ones()
    for stage in stages:
        if hasattr(attn, stage):
            getattr(attn, stage).gate = Ones()
    return edited


@pytest.mark.parametrize("kind, mode", [(kind, mode) for kind in KINDS for mode in interventions(kind)])
def test_edited_grad_cam_equals_grad_cam_of_a_physically_edited_copy(kind, mode):
    """Before, at and after the edited block: the edit changes the activations after it and the
    gradients flowing back through it."""
    model, x = tiny(18, kind), image()
    edit = Intervention("layer2.1", mode, k=3)
    reference = physically_edited(model, x, edit)
    blocks = ["layer1.1", "layer2.1", "layer3.1"]
    with torch.no_grad():
        top = model(x).argmax(1)                        # the unedited model's top class, as the app asks
        torch.testing.assert_close(reference(x), capture_attention(model, x, edit).logits, rtol=1e-5, atol=1e-5)
    ours, ref = grad_cams(model, x, blocks, top, edit), grad_cams(reference, x, blocks, top)
    unedited = grad_cams(model, x, blocks, top)
    for name in blocks:
        assert_library_equal(ours[name], ref[name])
    assert (ours["layer3.1"] - unedited["layer3.1"]).abs().max() > 1e-3          # the edit shows
    for name, cam in grad_cams(model, x, blocks, top).items():                    # and left no trace
        assert torch.equal(cam, unedited[name])
    torch.testing.assert_close(grad_cam(model, x, "layer3.1", edit=edit), grad_cam(reference, x, "layer3.1"),
                               rtol=1e-5, atol=1e-5)                # default target: the edited model's top
    assert hooks(model) == 0 and all(p.grad is None for p in model.parameters())


def test_edited_grad_cam_leaves_nothing_and_bad_edits_are_value_errors():
    model, x = tiny(18, "se"), image()
    model.layer1.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    for mode in ("gate_off", "zero_top_k"):
        grad_cams(model, x, residual_blocks(model), edit=Intervention("layer3.0", mode))
    with pytest.raises(ValueError, match="no attention block named 'layer9.0'; blocks: layer1.0, layer1.1"):
        grad_cam(model, x, "layer3.1", edit=Intervention("layer9.0"))
    with pytest.raises(ValueError, match="layer3.0 is SE: it has no spatial gate to switch off"):
        grad_cam(model, x, "layer3.1", edit=Intervention("layer3.0", "spatial_gate_off"))
    assert hooks(model) == 0
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters()) and not model.training


def test_threads_mixing_edited_and_unedited_calls_each_get_their_own():
    model = tiny(18, "cbam")
    images = [image(1, 32, seed) for seed in range(4)]
    edits = [None, Intervention("layer2.0", "gate_off"), Intervention("layer3.0", "zero_top_k", k=4)]
    serial = [[grad_cam(model, x, "layer3.1", 0, edit) for edit in edits] for x in images]
    for cams in serial:                                 # every edit gives another map: a mix-up would show
        assert min((a - b).abs().max() for i, a in enumerate(cams) for b in cams[:i]) > 1e-4
    results, errors = [[] for _ in images], []

    def work(i):
        try:
            for call in range(9):
                results[i].append((call % 3, grad_cam(model, images[i], "layer3.1", 0, edits[(call + i) % 3])))
        except Exception as error:                     # noqa: BLE001 -- reported below
            errors.append(error)

    in_threads(work, len(images))
    assert not errors, errors
    for i, calls in enumerate(results):
        assert len(calls) == 9
        for call, cam in calls:
            torch.testing.assert_close(cam, serial[i][(call + i) % 3], rtol=1e-5, atol=1e-6)
    assert hooks(model) == 0 and all(p.grad is None for p in model.parameters())


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
        with pytest.raises(ValueError, match=r"top class.*0 to 9.*list of 2"):
            grad_cam(model, x, "layer3.1", bad)
    with pytest.raises(ValueError, match="0 to 9"):
        score_cam(model, x, "layer3.1", 10)
    with pytest.raises(ValueError, match="batch_size"):
        score_cam(model, x, "layer3.1", batch_size=0)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        grad_cam(model, x[0], "layer3.1")
