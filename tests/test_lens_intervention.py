"""lens: an edited inspection's Grad-CAM runs through the edit, the edited block's map is what acted,
and which way the top class's probability moved."""
import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from blocks import Intervention, capture_attention, grad_cam
from lens import MAX_TOP_K, inspect_image, outcome
from lens.agreement import rank_agreement
from lens.inspection import randomised_from
from lens.intervention import SWITCHED_OFF, ZEROED
from test_lens_inspection import loaded, picture


def test_an_edited_inspections_grad_cam_runs_through_the_edit():
    lm = loaded("cbam")
    inspection = inspect_image(lm, picture(3))
    top = inspection.predictions(1)[0].index
    after = inspection.intervene("layer3.0", "gate_off")
    cam = after.grad_cam("layer3.1", top)
    expected = grad_cam(lm.model, inspection.x, "layer3.1", top, Intervention("layer3.0", "gate_off"))[0]
    np.testing.assert_array_equal(cam.values, expected.numpy())
    assert np.abs(cam.values - inspection.grad_cam("layer3.1", top).values).max() > 1e-4
    np.testing.assert_array_equal(after.grad_cams(["layer3.1"], top)["layer3.1"].values, cam.values)
    np.testing.assert_array_equal(inspection.grad_cam("layer3.1", top).values,     # the original stays the original
                                  grad_cam(lm.model, inspection.x, "layer3.1", top)[0].numpy())


@pytest.mark.parametrize("mode", ["gate_off", "spatial_gate_off"])
def test_a_cbam_gate_switched_off_is_one_everywhere_and_says_so(mode):
    inspection = inspect_image(loaded("cbam"), picture(3))
    shown = inspection.intervene("layer3.1", mode).edited_map()
    assert shown.note == SWITCHED_OFF == "the edit switched this gate off, so it is 1 at every position by construction"
    np.testing.assert_array_equal(shown.values, np.ones((4, 4), np.float32))
    assert shown.absolute and shown.label == "spatial attention (CBAM gate)"


def test_cbam_spatial_gate_after_its_channel_gate_is_off_sees_unweighted_features():
    lm = loaded("cbam")
    inspection = inspect_image(lm, picture(3))
    shown = inspection.intervene("layer3.1", "channel_gate_off").edited_map()
    reference = copy.deepcopy(lm.model)
    reference.layer3[1].attn.channel = nn.Identity()                     # no channel attention at all
    seen = []
    reference.layer3[1].attn.spatial.gate.register_forward_hook(lambda m, i, o: seen.append(o[0, 0].clone()))
    with torch.no_grad():
        reference(inspection.x)
    expected = seen[0].numpy()
    np.testing.assert_allclose(shown.values, expected, rtol=1e-6, atol=1e-7)
    assert np.abs(shown.values - inspection.view("layer3.1").map.values).max() > 1e-4 and not shown.note
    # zeroing channels acts on the block's output, after its spatial gate: the gate is unchanged
    np.testing.assert_array_equal(inspection.intervene("layer3.1", "zero_top_k").edited_map().values,
                                  inspection.view("layer3.1").map.values)


def attention_input(model: nn.Module, x: torch.Tensor, block: str) -> torch.Tensor:
    """[C, h, w]: the features the block's attention module weights (before its in-place scaling)."""
    seen = []
    handle = model.get_submodule(block).attn.register_forward_pre_hook(lambda m, i: seen.append(i[0][0].clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("kind", ["se", "eca"])
def test_se_and_eca_maps_after_an_edit(kind):
    lm = loaded(kind)
    inspection = inspect_image(lm, picture(3))
    features = attention_input(lm.model, inspection.x, "layer3.1")         # [32, 4, 4]
    top = list(inspection.view("layer3.1", 8).top.channels)
    # gate off: the same top channels fire unweighted
    off = inspection.intervene("layer3.1", "gate_off").edited_map(5)
    np.testing.assert_allclose(off.values, features[top[:5]].clamp(min=0).mean(0).numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(off.values - inspection.view("layer3.1", 5).map.values).max() > 1e-4
    # zero the top 5: averaged over those 5 the map is zero by construction; over 8, 3 channels are left
    zeroed = inspection.intervene("layer3.1", "zero_top_k", 5)
    shown = zeroed.edited_map(5)
    assert shown.note == ZEROED.format(k=5) and not shown.values.any()
    weights = torch.from_numpy(inspection.view("layer3.1").weights)
    left = (features[top[5:8]] * weights[top[5:8], None, None]).clamp(min=0).sum(0) / 8
    eight = zeroed.edited_map(8)
    np.testing.assert_allclose(eight.values, left.numpy(), rtol=1e-5, atol=1e-6)
    assert eight.values.any() and not eight.note


def test_edited_map_needs_an_edit():
    with pytest.raises(ValueError, match=r"edited_map needs an edited inspection: call intervene\(name, mode\) first"):
        inspect_image(loaded("se"), picture()).edited_map()


@pytest.mark.parametrize("before, after, expected", [
    (0.90, 0.9049, "unchanged"), (0.90, 0.8951, "unchanged"), (0.90, 0.9051, "raised"), (0.90, 0.8949, "lowered"),
    (0.30, 0.01, "lowered"), (0.0, 0.0, "unchanged"),
])
def test_outcome_counts_under_half_a_point_as_unchanged(before, after, expected):
    assert outcome(before, after) == expected


def test_an_edited_inspections_sanity_check_randomises_the_edited_model():
    lm = loaded("cbam")
    after = inspect_image(lm, picture(4)).intervene("layer2.0", "gate_off")
    copy_model = randomised_from(lm.model, "layer3.0", seed=0)
    other = replace(after, model=replace(lm, model=copy_model),
                    capture=capture_attention(copy_model, after.x, after.edit, channel_maps=MAX_TOP_K))
    top = after.predictions(1)[0].index
    assert after.sanity_check("layer3.0") == {
        "map": rank_agreement(after.view("layer3.0").map.values, other.view("layer3.0").map.values),
        "grad_cam": rank_agreement(after.grad_cam("layer3.0", top).values, other.grad_cam("layer3.0", top).values)}
