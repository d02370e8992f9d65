"""Class attribution at a residual block's output: Grad-CAM, and Score-CAM as a gradient-free check.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, Eq. 1-2): alpha_k = spatial mean of d y^c / d A^k, map = ReLU(sum_k
alpha_k A^k), with y^c the class's pre-softmax logit and A the block's output (after the residual
add and ReLU). One forward and one backward pass, for any number of blocks (`grad_cams`).

Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
Networks", CVPR Workshops 2020, Algorithm 1): each channel of A, upsampled to the input and
min-max normalised, masks the input; alpha = softmax over channels of the class logits of the
masked inputs; map = ReLU(sum_k alpha_k A^k). No gradients, but one forward pass per channel
(ResNet-50's layer4: 2048), run `batch_size` masked images at a time.

Both match pytorch-grad-cam (`GradCAM`, `ScoreCAM` with `ClassifierOutputTarget`) before its
resizing and min-max scaling. Unlike it, they are safe on a model shared between threads: hooks
are registered per call, act only for that call and are removed when it ends (`blocks.hooks`, as
`blocks.capture`). Grad-CAM can see the model with one block's attention edited (`Intervention`),
applied in the same pass by the hooks `capture_attention` uses, so the shared model is never
changed. Gradients come from `torch.autograd.grad` with respect to the hooked activations, so no
parameter's `requires_grad` is touched and no `.grad` is written; the model runs in its current
mode. Maps are on the CPU, float, not normalised.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .capture import Intervention, register_intervention
from .hooks import CallHooks, on_model_device
from .sites import attention_sites, declared_blocks


def residual_blocks(model: nn.Module) -> list[str]:
    """The residual blocks of `model` in forward order, named as `capture_attention` names its
    records ("layer3.1"): the children of each stage its `feature_info` declares; without one,
    the blocks that hold an attention module."""
    return [name for _, _, name, _, _ in declared_blocks(model)] or [site.name for site in attention_sites(model)]


def grad_cam(model: nn.Module, x: torch.Tensor, block: str, target=None,
             edit: Intervention | None = None) -> torch.Tensor:
    """[B, h, w] Grad-CAM of `target` at the output of residual block `block` (e.g. "layer3.1").

    `target`: a class index for every image, one per image (list or 1-D tensor), or None for
    each image's top prediction (of the edited model, with `edit`). `edit`: one block's attention
    edited for this call, as `capture_attention` edits it. The map has the block's resolution, is
    ReLU'd and not normalised.
    """
    return grad_cams(model, x, [block], target, edit)[block]


def grad_cams(model: nn.Module, x: torch.Tensor, blocks: list[str], target=None,
              edit: Intervention | None = None) -> dict[str, torch.Tensor]:
    """Grad-CAM of `target` at every block in `blocks`, from one forward and one backward pass:
    block name -> [B, h, w]. `target` and `edit` as in `grad_cam`."""
    names = _check(model, x, blocks)
    if x.is_inference():                     # made under inference mode: autograd needs a normal tensor
        with torch.inference_mode(False):
            x = x.clone()
    with torch.inference_mode(False), torch.enable_grad():
        logits, acts = _forward(model, x, names, track=True, edit=edit)
        classes = target_classes(target, logits)                                 # [B]
        score = logits.gather(1, classes[:, None].to(logits.device)).sum()  # sum of each image's logit
        grads = torch.autograd.grad(score, [acts[n] for n in names])
    with torch.no_grad():
        return {n: _weighted_sum(acts[n], g.mean((2, 3))) for n, g in zip(names, grads)}


def block_outputs(model: nn.Module, x: torch.Tensor, blocks: list[str]) -> dict[str, torch.Tensor]:
    """The outputs [B, C, h, w] of the residual blocks `blocks` (e.g. "layer3.1") in one forward
    pass, as float tensors on the CPU."""
    with torch.no_grad():
        outputs = _forward(model, x, _check(model, x, blocks), track=False)[1]
    return {name: value.float().cpu() for name, value in outputs.items()}


def score_cam(model: nn.Module, x: torch.Tensor, block: str, target=None, batch_size: int = 16) -> torch.Tensor:
    """[B, h, w] Score-CAM of `target` at the output of residual block `block`, gradient-free.

    Costs one forward pass of the input plus one per channel of the block per image, in batches of
    `batch_size` masked images. `target` and the map as in `grad_cam`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    names = _check(model, x, [block])
    x = on_model_device(model, x)                      # the masks below are made on the model's device
    with torch.inference_mode():
        logits, acts = _forward(model, x, names, track=False)
        classes = target_classes(target, logits).tolist()
        a = acts[block]                                                     # [B, C, h, w]
        scores = torch.empty(a.shape[:2])                                   # [B, C]
        for i, c in enumerate(classes):
            for j in range(0, a.shape[1], batch_size):
                # the masks of channels j..j+batch_size only: all C at 224 px would be C x 600 KB
                masks = F.interpolate(a[i:i + 1, j:j + batch_size], size=x.shape[2:], mode="bilinear",
                                      align_corners=True)[0]                # [n, H, W]
                lo, hi = masks.amin((1, 2), keepdim=True), masks.amax((1, 2), keepdim=True)
                masks = (masks - lo) / (hi - lo + 1e-8)
                scores[i, j:j + batch_size] = model(x[i] * masks[:, None])[:, c].float().cpu()  # [n, 3, H, W] in
        return _weighted_sum(a, scores.softmax(1).to(a.device, a.dtype))


def _weighted_sum(activation: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k w_k A_k): [B, C, h, w], [B, C] -> [B, h, w] on the CPU."""
    return (weights[:, :, None, None] * activation).sum(1).clamp(min=0).float().cpu()


def _check(model: nn.Module, x: torch.Tensor, blocks) -> list[str]:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a [B, 3, H, W] tensor with B >= 1, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if isinstance(blocks, str) or not blocks:
        raise ValueError(f"blocks must be a non-empty list of block names, got {blocks!r}")
    valid = residual_blocks(model)
    unknown = [b for b in blocks if b not in valid]
    if unknown:
        raise ValueError(f"no residual block named {', '.join(map(repr, unknown))}; blocks: {', '.join(valid)}")
    return list(dict.fromkeys(blocks))


def target_classes(target, logits: torch.Tensor) -> torch.Tensor:
    """[B] class indices on the CPU: `target` (None, one index, or one per image) checked against
    the scores [B, classes], or their argmax: each image's top class."""
    batch, n = logits.shape
    if target is None:
        return logits.argmax(1).cpu()
    try:
        t = None if isinstance(target, bool) else torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError):
        t = None
    if t is not None and t.ndim == 0:
        t = t.expand(batch)                                  # one class for every image
    if t is None or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool \
            or t.shape != (batch,) or not ((t >= 0) & (t < n)).all():
        raise ValueError(f"target must be None (each image's top class), a class index from 0 to {n - 1}, "
                         f"or a list of {batch} (one per image); got {target!r}")
    return t.long().cpu()


def _forward(model: nn.Module, x: torch.Tensor, names: list[str], track: bool, edit: Intervention | None = None):
    """Run `model` on `x` once, with `edit` applied if given; return its logits and the outputs of
    the blocks `names`. With `track`, each output requires grad (made a leaf if nothing before it
    did), so autograd records everything after it -- including the attention scales, which then
    run out of place."""
    call, seen = CallHooks(), {}

    def keep(name):
        def hook(module, inputs, output):
            if not call.mine():
                return None
            if track and not output.requires_grad:
                output = output.detach().requires_grad_()
            seen[name] = output
            return output
        return hook

    with call:
        for name in names:
            call.add(model.get_submodule(name), keep(name))
        if edit is not None:
            register_intervention(edit, attention_sites(model), call)
        logits = call.run(model, x)
    missing = [n for n in names if n not in seen]
    if missing:
        raise ValueError(f"block(s) {', '.join(missing)} did not run in {type(model).__name__}'s forward pass")
    return logits, seen
