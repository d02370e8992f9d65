"""The views after the split, as a visitor uses them: every view for a fourth attention kind, and the
faithfulness panels (Block, Overview, Compare) with their numbers equal to `lens.faithfulness`'s
and computed once per (image, model, block, class, fill)."""
import json

import numpy as np
import pytest

import lens.faithfulness
import pretrained
from lens import inspect_image
from lens.faithfulness import block_panel
from lens.glossary import GLOSSARY
from test_app import ASSETS, app, assert_clean, labelled, own_checkpoint, plain, shown_block, values

pytestmark = pytest.mark.slow
FIRST = json.loads((ASSETS / "samples.json").read_text())[0]


def default_inspection():
    return inspect_image(pretrained.load(pretrained.DEFAULT_MODEL), (ASSETS / FIRST["file"]).read_bytes(),
                         FIRST["file"])


def test_a_fourth_attention_kind_passes_through_every_view(fake_kind, monkeypatch):
    """A kind the page has never heard of (registered in blocks.sites only) arrives as a user's file:
    every view draws it, named by its record."""
    load = pretrained.load                  # the bundled models as they are (the process caches them)
    monkeypatch.setattr(pretrained, "load", lambda data, **k: fake_kind.loaded() if isinstance(data, bytes)
                        else load(data, **k))
    at = own_checkpoint(app(), "toy.safetensors", b"weights")
    assert_clean(at)
    assert f"**Channel weights** of `layer4.1` ({fake_kind.kind.display}, 64 channels)" in values(at.markdown)
    for view in ("Overview", "Compare", "Intervene", "Downloads", "Block"):
        at.segmented_control(key="view").set_value(view).run()
        assert_clean(at)
        assert not at.error, (view, values(at.error))
    at.segmented_control(key="view").set_value("Compare").run()
    assert any(f" · {fake_kind.kind.display} block `layer4.1`" in c for c in values(at.caption))
    at.segmented_control(key="view").set_value("Intervene").run()
    edits = at.radio(key="edit_mode").options
    assert ("only its spatial gate off" in edits) == fake_kind.kind.has_spatial_gate


def test_the_block_view_measures_deletion_and_insertion_once(monkeypatch):
    calls = []
    original = lens.faithfulness.curves
    monkeypatch.setattr(lens.faithfulness, "curves", lambda *a, **k: calls.append(1) or original(*a, **k))
    at = app()
    at.toggle(key="faithfulness").set_value(True).run()
    assert_clean(at)
    expected = block_panel(default_inspection(), "layer4.1")
    assert len(calls) == 2                              # the page's panel, then ours
    [table] = tables_with(at, "by deletion")
    assert list(table["map"][:4]) == [s.label for s in expected.scores]
    np.testing.assert_allclose(table["deletion AUC"][:4], [s.deletion_auc for s in expected.scores], atol=1e-6)
    np.testing.assert_allclose(table["insertion AUC"][:4], [s.insertion_auc for s in expected.scores], atol=1e-6)
    assert list(table["by deletion"][:4]) == [s.deletion_verdict for s in expected.scores]
    assert table["deletion AUC"][4] == pytest.approx(expected.random_deletion[0], abs=1e-6)
    titles = [json.loads(c.proto.spec).get("title") for c in at.get("vega_lite_chart")]
    assert "Deletion (grey: random maps, 5-95%)" in titles and "Insertion (grey: random maps, 5-95%)" in titles
    assert plain(lens_sentence := expected.sentence(expected.own)) in values(at.markdown), lens_sentence
    for change in (lambda: at.selectbox(key="cmap").set_value("jet"), lambda: at.slider(key="alpha").set_value(0.8),
                   lambda: at.toggle(key="stretch").set_value(True), lambda: at.slider(key="top_k").set_value(7)):
        change().run()
        assert_clean(at)
    assert len(calls) == 2                              # display controls never recompute it
    at.selectbox(key="faith_fill").set_value("mean").run()
    assert len(calls) == 3                              # another fill is another measurement


def tables_with(at, column: str) -> list:
    """The page's tables that have `column`."""
    return [t.value for t in at.dataframe if column in t.value.columns]


def test_the_overview_measures_every_block_on_request_and_compare_side_by_side():
    at = app()
    at.segmented_control(key="view").set_value("Overview").run()
    assert tables_with(at, "Grad-CAM deletion") == []                      # nothing measured before the click
    at.button(key="measure_blocks").click().run()
    assert_clean(at)
    inspection = default_inspection()
    [table] = tables_with(at, "Grad-CAM deletion")
    assert list(table["block"]) == inspection.block_names
    for name, deletion, gaussian in zip(table["block"], table["deletion AUC"], table["Gaussian deletion"]):
        panel = block_panel(inspection, name)
        assert deletion == pytest.approx(panel.own.deletion_auc, abs=1e-6)
        assert gaussian == pytest.approx(panel.gaussian.deletion_auc, abs=1e-6)
    at.segmented_control(key="view").set_value("Block").run()
    at.segmented_control(key="view").set_value("Overview").run()
    assert len(tables_with(at, "Grad-CAM deletion")) == 1                  # still there: requested once

    at.segmented_control(key="view").set_value("Compare").run()
    at.toggle(key="compare_faithfulness").set_value(True).run()
    assert_clean(at)
    cells = [m for m in values(at.markdown) if m.startswith("Deletion AUC")]
    assert len(cells) == 3
    cbam = block_panel(inspection, "layer4.1")
    assert cells[2].startswith(f"Deletion AUC **{cbam.own.deletion_auc:.3f}** ({cbam.own.deletion_verdict}")


def test_intervene_opens_where_the_card_measured_an_edit_to_cost_most():
    at = app()
    at.segmented_control(key="view").set_value("Intervene").run()
    assert_clean(at)
    card = pretrained.bundled.card_entry(pretrained.DEFAULT_MODEL)["blocks"]
    costliest = max(card, key=lambda b: card[b]["gate_off_cost"])
    assert costliest != "layer4.1" and labelled(at.selectbox, "Block").value == costliest
    at.segmented_control(key="view").set_value("Block").run()
    assert shown_block(at) == "layer4.1"                 # each view opens on its own default


def test_the_baselines_table_says_undefined_and_every_term_has_its_help():
    at = app()
    [table] = [t for t in at.dataframe if "pointing game" in t.value.columns]
    uniform = table.value[table.value["map"] == "uniform (baseline)"]
    assert uniform["pointing game"].isna().all()          # blank, not NaN in red: the caption says why
    assert any("undefined (left blank) for the uniform map" in c for c in values(at.caption))
    config = json.loads(table.proto.columns)
    assert config["pointing game"]["help"] == GLOSSARY["pointing game"]


def test_every_term_is_explained_once_in_the_glossary():
    at = app()
    [glossary] = [e for e in at.expander if e.label.startswith("Glossary")]
    text = plain(glossary.markdown[0].value)
    for term, meaning in GLOSSARY.items():
        assert f"**{term}**: {meaning}" in text
    assert GLOSSARY["stretched"] in at.toggle(key="stretch").help


def test_an_se_blocks_panel_scores_the_map_shown_for_the_chosen_top_k():
    """SE has no spatial gate: its map is where the top-k channels fire, so the panel follows top-k."""
    at = app()
    at.selectbox(key="model").set_value("se-resnet18-shapes").run()
    at.slider(key="top_k").set_value(3).run()
    at.toggle(key="faithfulness").set_value(True).run()
    assert_clean(at)
    inspection = inspect_image(pretrained.load("se-resnet18-shapes"), (ASSETS / FIRST["file"]).read_bytes(),
                               FIRST["file"])
    expected = block_panel(inspection, "layer4.1", top_k=3)
    assert block_panel(inspection, "layer4.1").own.deletion_auc != expected.own.deletion_auc
    [table] = tables_with(at, "by deletion")
    assert table["map"][0] == expected.own.label
    assert table["deletion AUC"][0] == pytest.approx(expected.own.deletion_auc, abs=1e-6)
