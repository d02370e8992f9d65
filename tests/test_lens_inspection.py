"""lens.Inspection: one image through one model, per block without the batch index."""
import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import pretrained
from blocks import Intervention, attention_resnet, capture_attention
from conftest import randomize_batchnorm
from lens import MAX_TOP_K, TopChannels, inspect_image
from viz import SpatialView


def loaded(kind: str) -> pretrained.LoadedModel:
    torch.manual_seed(0)
    model = randomize_batchnorm(attention_resnet(18, kind, num_classes=3, width=8, ratio=4)).eval()
    return pretrained.LoadedModel(f"tiny-{kind}", "file", model, pretrained.Preprocess(64, 1.0, "bilinear"),
                                  ("a", "b", "c"), "a tiny model")


def picture(seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (80, 96, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", ["se", "eca", "cbam"])
def test_views_are_the_capture_without_the_batch_index(kind):
    lm = loaded(kind)
    inspection = inspect_image(lm, picture(), "p.png")
    x = lm.preprocess(picture())[None]
    cap = capture_attention(lm.model, x, channel_maps=MAX_TOP_K)
    assert torch.equal(inspection.x, x) and inspection.image.size == (64, 64)
    assert inspection.stages == [["layer1.0", "layer1.1"], ["layer2.0", "layer2.1"], ["layer3.0", "layer3.1"],
                                 ["layer4.0", "layer4.1"]]
    for view, record in zip(inspection.views(3), cap.layers):
        assert view.weights.shape == (record.channels,)
        np.testing.assert_array_equal(view.weights, record.channel[0].numpy())
        expected = record.spatial[0] if kind == "cbam" else record.activity(3)[0]
        np.testing.assert_array_equal(view.map.values, expected.numpy())
        assert view.top.channels == tuple(np.argsort(-record.channel[0].numpy(), kind="stable")[:3].tolist())
    assert [(p.index, p.probability) for p in inspection.predictions(3)] == cap.top_k(3)
    assert inspection.predictions(1)[0].label == "abc"[cap.top_k(1)[0][0]]


def test_intervene_equals_a_capture_with_that_edit_and_leaves_the_original():
    lm = loaded("cbam")
    inspection = inspect_image(lm, picture(1))
    before = inspection.capture.logits.clone()
    after = inspection.intervene("layer3.1", "spatial_gate_off")
    expected = capture_attention(lm.model, inspection.x, Intervention("layer3.1", "spatial_gate_off"))
    torch.testing.assert_close(after.capture.logits, expected.logits, rtol=0, atol=0)
    assert torch.equal(inspection.capture.logits, before) and after.edit.mode == "spatial_gate_off"
    assert inspection.intervention_modes("layer3.1") == ("gate_off", "channel_gate_off", "spatial_gate_off",
                                                         "zero_top_k")
    assert inspect_image(loaded("se"), picture(1)).intervention_modes("layer3.1") == ("gate_off", "zero_top_k")


def test_parameters_formula_and_csv():
    inspection = inspect_image(loaded("se"), picture(2))
    # SE on layer3's 32 channels, r = 4: FC 32 -> 8 (+8 biases) and FC 8 -> 32 (+32 biases)
    assert inspection.parameters("layer3.1") == 32 * 8 + 8 + 8 * 32 + 32 == 552
    assert "parameters of this attention block: **552**" in inspection.formula("layer3.1")
    rows = inspection.to_csv().splitlines()
    assert rows[0] == "block,kind,channel,weight" and len(rows) == 1 + 2 * (8 + 16 + 32 + 64)
    assert rows[1] == f"layer1.0,se,0,{inspection.view('layer1.0').weights[0]:.6f}"


def test_top_k_is_bounded_by_the_kept_channel_maps():
    inspection = inspect_image(loaded("eca"), picture())
    for bad in (0, MAX_TOP_K + 1, 2.5, True):
        with pytest.raises(ValueError, match=f"top_k must be a whole number from 1 to {MAX_TOP_K}"):
            inspection.views(bad)


def test_notes_say_what_decoding_and_resizing_cost():
    lm = loaded("se")
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert inspect_image(lm, buf.getvalue(), "a.gif").notes == (
        "This is an animation of 2 frames: the model sees only the first.",
        "This image is 10 x 10 pixels: the model sees it enlarged 6 times, so it holds almost no detail.")
    assert inspect_image(lm, picture()).notes == ()
    with pytest.raises(pretrained.ImageError, match="the file is empty"):
        inspect_image(lm, b"")


def test_localisation_uses_the_mask_resized_and_cropped_with_the_image():
    lm = loaded("cbam")
    mask = np.zeros((80, 96), bool)
    mask[20:60, 30:70] = True
    inspection = inspect_image(lm, picture(), mask=mask)
    expected = np.zeros((64, 64), bool)      # 80 x 96 -> 64 x 77, centre crop drops 6 columns left
    expected[16:48, 18:50] = True             # rows 20..60 x 0.8, columns 30..70 x 0.8 - 6
    np.testing.assert_array_equal(inspection.mask, expected)
    gate = inspection.view("layer2.0").map.values
    from lens import auc, localisation_score, pointing_game
    cam = inspection.grad_cam("layer2.0")
    rows = inspection.localisation("layer2.0", cam=cam)
    assert [r["map"] for r in rows] == ["spatial attention (CBAM gate)", cam.label, "centred Gaussian (baseline)",
                                        "uniform (baseline)"]
    assert rows[0] == {"map": "spatial attention (CBAM gate)", "mass ratio": localisation_score(gate, inspection.mask),
                       "pointing game": pointing_game(gate, inspection.mask), "AUC": auc(gate, inspection.mask)}
    assert rows[1]["AUC"] == auc(cam.values, inspection.mask)
    assert inspect_image(lm, picture()).localisation("layer2.0") is None


def test_ties_are_counted_exactly_and_printed_so_they_read_differently():
    w = torch.tensor([0.5, 1.0, 1.0, 0.99999988, 1.0, 1.0, 0.99999988, 0.2])
    top = TopChannels.of(w, 5)
    assert top.channels == (1, 2, 4, 5, 3) and (top.tied, top.tied_shown) == (2, 1)
    assert top.caption() == ("Top 5 channels: #1 1.0000000 · #2 1.0000000 · #4 1.0000000 · #5 1.0000000 · "
                             "#3 0.9999999. 2 channels share the weight 0.9999999 exactly; the lowest-numbered "
                             "of them is shown.")
    plain = TopChannels.of(torch.tensor([0.1, 0.9, 0.4]), 2)
    assert plain.caption(" (orange)") == "Top 2 channels (orange): #1 0.9000 · #2 0.4000"


def test_one_scale_rule_for_every_map():
    gate = SpatialView(np.array([[0.2, np.nan], [0.4, 0.6]]), "gate", True, "gate value")
    activity = SpatialView(np.array([[1.0, 3.0]]), "activity", False, "mean activation")
    assert gate.scale_caption(False) == "0.00 to 1.00: gate value, fixed scale"
    assert gate.scale_caption(True) == "0.20 to 0.60: stretched to this map's range"     # the NaN cell skipped
    assert activity.scale_caption(False) == "1.00 to 3.00: stretched to this map's range"


def test_grad_cam_beside_the_map_and_their_rank_agreement():
    from scipy.stats import spearmanr
    from blocks import grad_cam
    lm = loaded("cbam")
    inspection = inspect_image(lm, picture(3))
    top = inspection.predictions(1)[0]
    cam = inspection.grad_cam("layer3.1")
    np.testing.assert_array_equal(cam.values, grad_cam(lm.model, inspection.x, "layer3.1", top.index)[0].numpy())
    assert cam.label == f"Grad-CAM of '{top.label}' (attribution, not attention)" and not cam.absolute
    other = inspection.grad_cam("layer3.1", target=(top.index + 1) % 3)
    assert not np.array_equal(other.values, cam.values)
    gate = inspection.view("layer3.1").map.values
    expected = spearmanr(gate.ravel(), cam.values.ravel()).statistic
    assert inspection.cam_agreement("layer3.1", cam) == pytest.approx(expected, abs=1e-12)


def test_rank_agreement_counts_ties_like_spearman_and_refuses_other_shapes():
    from scipy.stats import spearmanr
    from lens.agreement import rank_agreement
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, (6, 6)).astype(float), rng.random((6, 6))
    assert rank_agreement(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert rank_agreement(b, b) == pytest.approx(1.0) and rank_agreement(b, -b) == pytest.approx(-1.0)
    assert np.isnan(rank_agreement(np.zeros((6, 6)), b))                  # an empty map ranks nothing
    with pytest.raises(ValueError, match=r"the maps must have the same cells: \[6, 6\] vs \[3, 12\]"):
        rank_agreement(a, b.reshape(3, 12))


def test_sanity_check_randomises_a_copy_and_measures_how_much_the_maps_change():
    from lens.agreement import rank_agreement
    from lens.inspection import randomised_from
    lm = loaded("cbam")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    inspection = inspect_image(lm, picture(5))
    result = inspection.sanity_check("layer3.0")
    assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in before.items())     # the shared model untouched
    copy = randomised_from(lm.model, "layer3.0", seed=0)
    changed = [k for k, v in copy.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(k.startswith(("layer3.", "layer4.", "fc.")) for k in changed)   # from the block on
    assert any(k.startswith("layer3.0.") for k in changed) and any(k.startswith("fc.") for k in changed)
    other = replace(lm, model=copy)
    again = inspect_image(other, picture(5))
    top = inspection.predictions(1)[0].index
    assert result == {"map": rank_agreement(inspection.view("layer3.0").map.values, again.view("layer3.0").map.values),
                      "grad_cam": rank_agreement(inspection.grad_cam("layer3.0", top).values,
                                                 again.grad_cam("layer3.0", top).values)}
    assert result["grad_cam"] < 0.9                                     # Grad-CAM depends on the weights
    # a map the randomised weights cannot reach (a block before them) stays exactly the same
    later = inspect_image(replace(lm, model=randomised_from(lm.model, "layer4.0")), picture(5))
    assert rank_agreement(inspection.view("layer2.0").map.values, later.view("layer2.0").map.values) == pytest.approx(1.0)
    np.testing.assert_array_equal(inspection.view("layer2.0").map.values, later.view("layer2.0").map.values)


@pytest.mark.parametrize("broken, expected", [
    ({"fc.weight": float("nan")}, "of its 10 class scores, 10 are NaN (not a number)"),
    ({"fc.bias": float("inf")}, "of its 10 class scores, 10 are infinite"),
])
def test_a_nan_or_infinite_output_says_so(kind, broken, expected):
    torch.manual_seed(0)
    model = attention_resnet(18, kind, num_classes=10, width=8, ratio=4).eval()
    state = model.state_dict()
    for key, value in broken.items():
        state[key].fill_(value)
    lm = pretrained.LoadedModel(f"broken-{kind}", "file", model, pretrained.Preprocess(64, 1.0, "bilinear"),
                                tuple("abcdefghij"), "a broken model")
    inspection = inspect_image(lm, picture())
    assert expected in inspection.output_note and "probabilities mean nothing" in inspection.output_note
    assert inspection.notes == (inspection.output_note,) and inspection.input_notes == ()
    edited = inspection.intervene("layer4.1", "gate_off")                 # an edit's own output, judged again
    assert edited.output_note == inspection.output_note
    fine = inspect_image(loaded(kind), picture())
    assert fine.output_note == "" and fine.notes == ()


def test_an_output_with_one_nan_score_counts_it():
    lm = loaded("se")
    lm.model.fc.weight.data[1].fill_(float("nan"))                        # a fresh model: nothing shared
    note = inspect_image(lm, picture()).output_note
    assert "of its 3 class scores, 1 is NaN (not a number), so its probabilities mean nothing" in note
