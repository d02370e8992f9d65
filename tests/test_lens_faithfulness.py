"""Deletion and insertion (lens.faithfulness) against torchcam 0.5's DeletionInsertionMetric, the ROAD
fill (lens.road) against grad-cam's NoisyLinearImputer, a hand-made model whose class depends on one
region only, the panel of a bundled model's block, validation, batching, thread safety and nothing
left on the model."""
from contextlib import nullcontext
from functools import partial

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer      # the references (requirements-dev.txt)
from scipy.ndimage import gaussian_filter
from torch import nn
from torchcam.metrics import DeletionInsertionMetric

import pretrained
from conftest import in_threads
from lens import inspect_image
from lens.faithfulness import BATCH, FILLS, blur_kernel, block_panel, curves
from lens.road import impute

TOL = 1e-5
# grad-cam's imputer calls np.argwhere on a tensor, which NumPy 2 warns about
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept:DeprecationWarning")


class StandIn:
    """A CAM extractor for torchcam's metric that returns the maps under test as they are."""

    def __init__(self, model: nn.Module, maps: torch.Tensor):
        self.model, self.maps = model, maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs):
        return [self.maps]

    def fuse_cams(self, cams):
        return cams[0]

    def _hooks_off(self):
        return nullcontext()


def torchcam_curves(model, x, maps, fill: str, steps: int, target=None):
    """torchcam's whole curves (its `_compute_curves`, called by its own `update`) and its AUCs."""
    baseline = None if fill == "mean" else _blur(x)
    metric = DeletionInsertionMetric(StandIn(model, maps), partial(torch.softmax, dim=-1), steps=steps,
                                     baseline=baseline)
    seen = {}
    compute = metric._compute_curves

    def keep(*args, **kwargs):
        seen["curves"] = compute(*args, **kwargs)
        return seen["curves"]

    metric._compute_curves = keep
    metric.update(x, target)
    return seen["curves"], metric.summary()


def _blur(x: torch.Tensor) -> torch.Tensor:
    kernel = blur_kernel()[None, None].expand(x.shape[1], 1, -1, -1)
    return nn.functional.conv2d(x, kernel, padding=kernel.shape[-1] // 2, groups=x.shape[1])


def inputs(batch: int = 2, size=(37, 29), seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))


def maps(batch: int = 2, size=(5, 4), seed: int = 2) -> torch.Tensor:
    return torch.rand(batch, *size, generator=torch.Generator().manual_seed(seed))


# ---------- torchcam ----------

@pytest.mark.parametrize("fill", ["mean", "blur"])
@pytest.mark.parametrize("target", [None, 3, [1, 7]])
def test_curves_equal_torchcams_metric(tiny_model, fill, target):
    x, m = inputs(), maps()              # 37 x 29 = 1073 pixels, 7 steps: 154 pixels each, the last 149
    ours = curves(tiny_model, x, m, target, steps=7, fill=fill)
    (fractions, deletion, insertion), summary = torchcam_curves(tiny_model, x, m, fill, 7, target)
    assert ours.fractions.shape == (8,) and torch.equal(ours.fractions, fractions)
    assert ours.fractions[-1] == 1 and ours.fractions[-2] == 924 / 1073
    assert torch.allclose(ours.deletion, deletion, atol=TOL) and torch.allclose(ours.insertion, insertion, atol=TOL)
    assert ours.deletion_auc.mean().item() == pytest.approx(summary["deletion_auc"], abs=TOL)
    assert ours.insertion_auc.mean().item() == pytest.approx(summary["insertion_auc"], abs=TOL)
    probabilities = tiny_model(x).softmax(1)
    expected = probabilities.argmax(1) if target is None else torch.as_tensor(target).expand(2)
    assert torch.equal(ours.target, expected)
    assert torch.allclose(ours.deletion[:, 0], probabilities[torch.arange(2), expected], atol=TOL)


def test_ties_go_to_the_earlier_pixel_and_maps_are_upsampled_bilinearly(tiny_model):
    x = inputs(1, (16, 16))
    flat = torch.zeros(1, 4, 4)              # all tied: raster order, as torchcam's stable sort
    ours = curves(tiny_model, x, flat, steps=4, fill="mean")
    (_, deletion, insertion), _ = torchcam_curves(tiny_model, x, flat, "mean", 4)
    assert torch.allclose(ours.deletion, deletion, atol=TOL) and torch.allclose(ours.insertion, insertion, atol=TOL)
    top_rows = torch.zeros(1, 16, 16)
    top_rows[:, :4] = 1
    by_hand = tiny_model(x * (top_rows == 0)).softmax(1)[0, ours.target[0]]   # the top quarter removed
    assert ours.deletion[0, 1].item() == pytest.approx(by_hand.item(), abs=TOL)
    numpy_map = curves(tiny_model, x, np.ones((1, 2, 3)) * np.arange(3), steps=4, fill="mean")
    (_, deletion, _), _ = torchcam_curves(tiny_model, x, torch.ones(1, 2, 3) * torch.arange(3.), "mean", 4)
    assert torch.allclose(numpy_map.deletion, deletion, atol=TOL)


def test_the_blur_is_rises_kernel():
    impulse = np.zeros((11, 11))
    impulse[5, 5] = 1
    rise = gaussian_filter(impulse, 5)           # RISE's gkern(11, 5)
    assert np.allclose(blur_kernel().numpy(), rise, atol=1e-7) and blur_kernel().sum().item() == pytest.approx(1)


# ---------- ROAD ----------

def road_masks(size=(23, 19)) -> torch.Tensor:
    """[K, H, W] known pixels: a blob, two holes, a border strip, one missing pixel, one known pixel."""
    h, w = size
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    masks = [((y - 11) ** 2 + (x - 9) ** 2) > 30,
             ~((((y - 4) ** 2 + (x - 4) ** 2) < 9) | ((y > 15) & (x > 12))),
             x > 2,
             (y != 0) | (x != 0),
             (y == 20) & (x == 3),
             torch.rand(h, w, generator=torch.Generator().manual_seed(4)) > 0.5]
    return torch.stack(masks)


def test_road_equals_grad_cams_imputer_without_noise():
    image = torch.randn(3, 23, 19, generator=torch.Generator().manual_seed(3))
    known = road_masks()
    ours = impute(image.expand(len(known), -1, -1, -1), known)
    reference = NoisyLinearImputer(noise=0)
    for filled, mask in zip(ours, known):
        assert torch.allclose(filled, reference(image, mask.float()), atol=1e-4)
        assert torch.equal(filled[:, mask], image[:, mask])          # known pixels untouched


@pytest.mark.parametrize("size", [(1, 7), (7, 1), (2, 2), (3, 50), (64, 3)])
def test_road_equals_grad_cams_imputer_on_thin_images(size):
    """Rows and columns of one to three pixels: the dissection's lines and leaves at their edges."""
    generator = torch.Generator().manual_seed(sum(size))
    image = torch.randn(3, *size, generator=generator)
    known = torch.rand(5, *size, generator=generator) > torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])[:, None, None]
    known[:, 0, 0] = True                                            # something to impute from
    ours = impute(image.expand(len(known), -1, -1, -1), known)
    reference = NoisyLinearImputer(noise=0)
    for filled, mask in zip(ours, known):
        assert torch.allclose(filled, reference(image, mask.float()), atol=1e-4)


def test_road_with_nothing_known_is_zero_and_with_nothing_missing_is_the_image():
    image = torch.randn(2, 3, 8, 8)
    known = torch.stack([torch.zeros(8, 8, dtype=torch.bool), torch.ones(8, 8, dtype=torch.bool)])
    out = impute(image, known)
    assert torch.equal(out[0], torch.zeros(3, 8, 8)) and torch.equal(out[1], image[1])


def test_road_noise_is_seeded_and_only_on_imputed_pixels():
    image = torch.randn(1, 3, 23, 19)
    known = road_masks()[:1]
    clean = impute(image, known)
    a, b = (impute(image, known, 0.01, torch.Generator().manual_seed(5)) for _ in range(2))
    other = impute(image, known, 0.01, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, other)
    assert torch.equal(a[:, :, known[0]], image[:, :, known[0]])
    noise = (a - clean)[:, :, ~known[0]]
    assert noise.std().item() == pytest.approx(0.01, rel=0.2) and noise.abs().max() < 0.1


def test_road_curves_are_grad_cams_imputations_through_the_model(tiny_model):
    x, m = inputs(1, (20, 17)), maps(1, (3, 3))
    ours = curves(tiny_model, x, m, steps=4, fill="road")
    ranks = nn.functional.interpolate(m[:, None], size=(20, 17), mode="bilinear", align_corners=False).flatten()
    ranks = ranks.argsort(descending=True, stable=True).argsort().view(20, 17)
    reference, target = NoisyLinearImputer(noise=0), ours.target[0]
    for j, count in enumerate((85, 170, 255), 1):                    # ceil(340 / 4) pixels a step
        deleted = reference(x[0], (ranks >= count).float())
        inserted = reference(x[0], (ranks < count).float())
        probabilities = tiny_model(torch.stack([deleted, inserted])).softmax(1)[:, target]
        assert ours.deletion[0, j].item() == pytest.approx(probabilities[0].item(), abs=1e-4)
        assert ours.insertion[0, j].item() == pytest.approx(probabilities[1].item(), abs=1e-4)
    nothing = tiny_model(torch.zeros_like(x)).softmax(1)[0, target]  # nothing kept: the mean fill
    assert ours.deletion[0, -1].item() == pytest.approx(nothing.item(), abs=TOL)
    assert ours.insertion[0, 0].item() == pytest.approx(nothing.item(), abs=TOL)


def test_road_curves_with_a_seed_are_reproducible_and_differ_from_no_noise(tiny_model):
    x, m = inputs(1, (20, 17)), maps(1, (3, 3))
    a, b = (curves(tiny_model, x, m, steps=4, fill="road", seed=0) for _ in range(2))
    clean = curves(tiny_model, x, m, steps=4, fill="road")
    assert torch.equal(a.deletion, b.deletion) and not torch.equal(a.deletion, clean.deletion)


# ---------- a model that looks at one region only ----------

class LeftHalf(nn.Module):
    """Class 0's logit is 12 x the mean square of the image's left half minus 6, class 1's its
    negative: nothing on the right matters."""

    def forward(self, x):
        z = 12 * (x[:, :, :, :32] ** 2).mean((1, 2, 3)) - 6
        return torch.stack([z, -z], 1)


@pytest.mark.slow
@pytest.mark.parametrize("fill", list(FILLS))
def test_a_map_of_the_region_the_model_uses_is_far_outside_the_random_band(fill):
    y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    image = torch.zeros(1, 3, 64, 64)
    image[..., :32] = ((y + x) % 2 * 2 - 1)[:, :32]                  # a +-1 checkerboard on the left: class 0
    left = torch.zeros(16, 16)
    left[:, :8] = 1                                                  # the block's resolution: 4 pixels a cell
    random = torch.rand(8, 16, 16, generator=torch.Generator().manual_seed(0))
    stack = torch.cat([left[None], 1 - left[None], random])
    result = curves(LeftHalf(), image.expand(len(stack), -1, -1, -1), stack, fill=fill)
    assert (result.target == 0).all()
    for auc, lower_is_faithful in ((result.deletion_auc, True), (result.insertion_auc, False)):
        low, high = torch.quantile(auc[2:], torch.tensor([0.05, 0.95])).tolist()     # about 0.46 to 0.56
        region, opposite = auc[0].item(), auc[1].item()                              # about 0.25 and 0.75
        assert (region < low - 0.2 and opposite > high + 0.15) if lower_is_faithful else \
            (region > high + 0.15 and opposite < low - 0.2), (fill, region, opposite, low, high)


# ---------- a bundled model's block ----------

@pytest.fixture(scope="module")
def star():
    return inspect_image(pretrained.load("cbam-resnet18-shapes"), "assets/shapes-star.png")


@pytest.fixture(scope="module")
def star_panel(star):
    return block_panel(star, "layer3.1", steps=10)


@pytest.mark.slow
def test_block_panel_scores_four_maps_beside_eight_random_ones(star, star_panel):
    panel = star_panel
    top = star.predictions(1)[0]
    assert (panel.target, panel.target_label, panel.fill) == (top.index, top.label, "blur")
    assert [s.label for s in panel.scores] == [
        "spatial attention (CBAM gate)", "spatial attention (CBAM gate), reversed",
        "Grad-CAM of 'star' (attribution, not attention)", "a centred Gaussian (baseline)"]
    assert panel.curves.deletion.shape == (12, 11) and (panel.curves.target == top.index).all()
    for (mean, low, high), auc in ((panel.random_deletion, panel.curves.deletion_auc),
                                   (panel.random_insertion, panel.curves.insertion_auc)):
        assert low <= mean <= high and mean == pytest.approx(auc[4:].double().mean().item())
    for score, d, i in zip(panel.scores, panel.curves.deletion_auc, panel.curves.insertion_auc):
        assert (score.deletion_auc, score.insertion_auc) == (pytest.approx(d.item()), pytest.approx(i.item()))
        low, high = panel.random_deletion[1:]
        assert (score.deletion_verdict == "no better than chance") == (low <= score.deletion_auc <= high)
        assert score.deletion_verdict in panel.sentence(score) or "depends on" in panel.sentence(score) \
            or "no better than chance" in panel.sentence(score)
    cam = star.grad_cam("layer3.1", top.index).values
    alone = curves(star.model.model, star.x, cam[None], top.index, steps=10)
    assert panel.scores[2].deletion_auc == pytest.approx(alone.deletion_auc.item(), abs=TOL)
    again = block_panel(star, "layer3.1", steps=10)
    assert again.random_deletion == panel.random_deletion               # the random maps are seeded


def test_a_panels_table_has_a_row_per_map_and_the_random_maps_last(star_panel):
    panel = star_panel
    rows = panel.rows()
    assert [r["map"] for r in rows[:4]] == [s.label for s in panel.scores]
    assert rows[0] == {"map": panel.own.label, "deletion AUC": panel.own.deletion_auc,
                       "by deletion": panel.own.deletion_verdict, "insertion AUC": panel.own.insertion_auc,
                       "by insertion": panel.own.insertion_verdict}
    (d_mean, d_low, d_high), (i_mean, i_low, i_high) = panel.random_deletion, panel.random_insertion
    assert panel.band("deletion") == f"{d_low:.3f}-{d_high:.3f}" and panel.band("insertion") == f"{i_low:.3f}-{i_high:.3f}"
    assert rows[4] == {"map": f"random maps (mean; band {d_low:.3f}-{d_high:.3f} / {i_low:.3f}-{i_high:.3f})",
                       "deletion AUC": d_mean, "by deletion": "the band of chance", "insertion AUC": i_mean,
                       "by insertion": "the band of chance"}
    assert len(rows) == 5 and f"deletion {panel.band('deletion')}" in panel.sentence(panel.own)


def test_block_panel_refuses_an_edited_inspection_and_one_random_map(star):
    with pytest.raises(ValueError, match="without its edit"):
        block_panel(star.intervene("layer3.1"), "layer3.1")
    with pytest.raises(ValueError, match="randoms must be"):
        block_panel(star, "layer3.1", randoms=1)


# ---------- validation, batching, threads, nothing left behind ----------

@pytest.mark.parametrize("call, message", [
    (lambda m: curves("model", inputs(), maps()), "must be a torch.nn.Module"),
    (lambda m: curves(m, inputs()[0], maps()), r"x must be a float tensor \[B, 3, H, W\]"),
    (lambda m: curves(m, inputs().long(), maps()), "x must be a float tensor"),
    (lambda m: curves(m, inputs(), maps(3)), r"one map per image of x \(2\), got \[3, 5, 4\]"),
    (lambda m: curves(m, inputs(), maps()[0]), r"saliency must be \[B, h, w\]"),
    (lambda m: curves(m, inputs(), "hot"), "saliency must be numbers"),
    (lambda m: curves(m, inputs(), maps() * float("nan")), "NaN or infinite"),
    (lambda m: curves(m, inputs(), maps(), steps=0), "steps must be a whole number >= 1, got 0"),
    (lambda m: curves(m, inputs(), maps(), steps=2.5), "steps must be a whole number"),
    (lambda m: curves(m, inputs(), maps(), fill="black"), "unknown fill 'black'; fills: blur, mean, road"),
    (lambda m: curves(m, inputs(), maps(), fill="road", seed="0"), "seed must be None"),
    (lambda m: curves(m, inputs(), maps(), target=10), "class index from 0 to 9"),
    (lambda m: curves(m, inputs(), maps(), target=[1]), "a list of 2"),
    (lambda m: curves(m, inputs(), maps(), target=1.5), "target must be"),
])
def test_bad_arguments_say_what_is_wrong(tiny_model, call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_model)


class Counting(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, x):
        self.batches.append(len(x))
        return self.model(x)


def test_every_perturbed_input_goes_through_the_model_in_batches(tiny_model):
    counting = Counting(tiny_model)
    curves(counting, inputs(3), maps(3), steps=20, fill="mean")
    jobs = 3 * (2 * 19 + 1)                                  # per image: 19 + 19 inner points, one all-fill
    assert counting.batches == [3] + [BATCH] * (jobs // BATCH) + [jobs % BATCH]


def test_a_training_model_is_scored_in_eval_mode_and_left_as_it_was(tiny_model):
    expected = curves(tiny_model, inputs(), maps(), steps=5)
    tiny_model.train()
    tiny_model.layer1[0].bn1.eval()                          # a mixed state comes back mixed
    got = curves(tiny_model, inputs(), maps(), steps=5)
    assert torch.allclose(got.deletion, expected.deletion, atol=TOL)
    assert tiny_model.training and not tiny_model.layer1[0].bn1.training and tiny_model.layer1[0].bn2.training


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_nothing_is_left_on_the_model_after_success_or_failure(tiny_model):
    curves(tiny_model, inputs(), maps(), steps=4, fill="road")
    with pytest.raises(ValueError):
        curves(tiny_model, inputs(), maps(), target=99)
    assert hooks(tiny_model) == 0 and all(p.grad is None for p in tiny_model.parameters())
    assert not tiny_model.training and not torch.is_inference_mode_enabled() and torch.is_grad_enabled()


def test_threads_sharing_one_model_get_the_serial_results(tiny_model):
    xs, ms = [inputs(2, (24, 24), seed=i) for i in range(8)], [maps(2, seed=10 + i) for i in range(8)]
    fills = list(FILLS) * 3
    serial = [curves(tiny_model, xs[i], ms[i], steps=6, fill=fills[i]) for i in range(8)]
    threaded = [None] * 8

    def work(i):
        threaded[i] = curves(tiny_model, xs[i], ms[i], steps=6, fill=fills[i])

    in_threads(work)
    for a, b in zip(serial, threaded):
        assert torch.allclose(a.deletion, b.deletion, atol=TOL) and torch.allclose(a.insertion, b.insertion, atol=TOL)
    assert hooks(tiny_model) == 0
