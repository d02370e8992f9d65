"""An attention kind is a record (`blocks.AttentionKind`) that every text and figure asks: a fourth
kind registered in `ATTENTION_MODULES` alone (the `fake_kind` fixture) passes through the capture,
the inspection, the Teach text and the report under its own name."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from blocks import (Intervention, attention_kind, attention_kinds, attention_sites, capture_attention,
                    interventions)
from blocks.sites import ATTENTION_MODULES, CBAM, ECA, SE
from fake_kind import ToyAttention
from lens import inspect_image, report


def test_every_registered_module_agrees_with_its_kind_on_the_spatial_gate():
    assert attention_kinds() == [SE, ECA, CBAM]
    for path, (kind, channel, spatial) in ATTENTION_MODULES.items():
        assert (spatial is not None) == kind.has_spatial_gate, path
        assert attention_kind(kind.name) is kind
    assert [k.display for k in attention_kinds()] == ["SE", "ECA", "CBAM"]


def test_an_unknown_kind_name_says_which_are_known():
    with pytest.raises(ValueError, match="unknown attention kind 'gct'; known kinds: se, eca, cbam"):
        attention_kind("gct")


def picture(tmp_path=None):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (72, 80, 3), dtype=np.uint8))
    if tmp_path is None:
        return image
    image.save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def test_a_fourth_kind_is_captured(fake_kind):
    model, two = fake_kind.model(), fake_kind.kind.has_spatial_gate
    assert fake_kind.kind in attention_kinds() and attention_kinds()[-1] is fake_kind.kind
    assert [s.kind for s in attention_sites(model)] == [fake_kind.kind.name] * 8
    cap = capture_attention(model, torch.rand(2, 3, 64, 64), channel_maps=4)
    assert [r.name for r in cap.layers] == [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]
    for record in cap.layers:
        assert record.attention is fake_kind.kind
        assert record.channel.shape == (2, record.channels) and 0 <= record.channel.min() <= record.channel.max() <= 1
        assert (record.spatial is not None) == two
        if two:
            assert record.spatial.shape == (2, *record.feature_size)
    assert record.feature_size == (2, 2) and record.channels == 64
    assert interventions(fake_kind.kind.name) == (("gate_off", "channel_gate_off", "spatial_gate_off", "zero_top_k")
                                                  if two else ("gate_off", "zero_top_k"))
    edited = capture_attention(model, torch.rand(2, 3, 64, 64), Intervention("layer4.1", "gate_off"))
    assert edited.logits.shape == (2, 3)
    if not two:
        with pytest.raises(ValueError, match="layer4.1 is Toy: it has no spatial gate to switch off"):
            capture_attention(model, torch.rand(1, 3, 64, 64), Intervention("layer4.1", "spatial_gate_off"))


def test_a_fourth_kind_is_inspected_and_explained(fake_kind):
    kind = fake_kind.kind
    inspection = inspect_image(fake_kind.loaded(), picture(), "photo.png")
    views = inspection.views(3)
    assert [v.attention for v in views] == [kind] * 8
    view = views[-1]
    if kind.has_spatial_gate:
        assert view.map.absolute and view.map.label == "spatial attention (Toy-2 gate)"
        np.testing.assert_array_equal(view.map.values, inspection.capture.layers[-1].spatial[0].numpy())
    else:
        assert not view.map.absolute and view.map.label == "where the top-3 weighted channels fire (not a gate)"
    assert inspection.channels_figure("layer4.1").axes[0].get_title().startswith(
        f"layer4.1 ({kind.display}): 64 channel weights")
    assert inspection.intervention_modes("layer4.1") == interventions(kind.name)
    assert inspection.intervene("layer4.1", inspection.intervention_modes("layer4.1")[1]).capture.logits.shape == (1, 3)
    text = inspection.formula("layer4.1").splitlines()
    params = sum(p.numel() for p in inspection.model.model.get_submodule("layer4.1.attn").parameters())
    assert text[0] == f"**layer4.1** -- {kind.display} on a feature map of 64 channels x 2 x 2"
    assert text[1].startswith(f"- parameters of this attention block: **{params:,}** (")
    assert text[2].startswith(f"- {kind.display} (a test's own kind): a channel gate")
    assert ("then a spatial gate (one weight per pixel of the 2 x 2 map)" in text[2]) == kind.has_spatial_gate
    assert text[3] == f"- `{kind.formula}`"
    assert not any(name in line for line in text for name in ("CBAM", "SE (", "ECA ("))


@pytest.mark.slow
def test_a_fourth_kind_is_reported(fake_kind, tmp_path):
    target = tmp_path / "out"
    assert report.write_report(picture(tmp_path), fake_kind.loaded(), target, "jet", 3, 40) == []
    data = json.loads((target / "attention.json").read_text())
    assert [b["kind"] for b in data["blocks"]] == [fake_kind.kind.name] * 8
    assert all((b["spatial"] is not None) == fake_kind.kind.has_spatial_gate for b in data["blocks"])
    assert all((b["channel_activity"] is None) == fake_kind.kind.has_spatial_gate for b in data["blocks"])
    assert sorted(p.name for p in (target / "blocks").iterdir()) == sorted(
        f"layer{s}.{b}_{part}.png" for s in (1, 2, 3, 4) for b in (0, 1) for part in ("channels", "spatial"))
    assert Image.open(target / "overview.png").size[0] > 100
    figures = dict(report.report_figures(inspect_image(fake_kind.loaded(), picture(), "photo.png"), 3, "jet"))
    assert figures["blocks/layer4.1_channels.png"].axes[0].get_title().startswith(
        f"layer4.1 ({fake_kind.kind.display}): 64 channel weights")


def test_the_fourth_kind_is_gone_after_its_tests():
    assert attention_kinds() == [SE, ECA, CBAM]
    assert attention_sites(ToyAttention(4)) == []
