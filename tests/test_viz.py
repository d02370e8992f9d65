"""viz: pure figure builders. Alignment of heatmaps with the image, chart contents, no pyplot."""
import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from torch import nn

from blocks import AttentionRecord, CBAMBlock, capture_attention
from lens import BlockView, spatial_view
from viz import (SpatialView, channel_depth_figure, channel_weights_figure, colorbar_strip, figure_png, heatmap_figure,
                 joint_range, overlay, spatial_grid_figure, spatial_view_figure, upsample)
from viz.channels import TOP_BAR, channel_weights_chart, spaced


def test_upsample_is_bilinear_align_corners_false():
    m = np.zeros((4, 4), np.float32)
    m[1, 2] = 1.0
    up = upsample(m, (32, 32))
    assert up.shape == (32, 32)
    # cell (1, 2) covers rows 8..15, cols 16..23; its centre (11.5, 19.5) keeps the full value
    assert up[11, 19] == pytest.approx((1.0 - 0.5 / 8) ** 2, abs=1e-6) and up[12, 20] == up[11, 19]
    assert np.unravel_index(up.argmax(), up.shape) in {(11, 19), (11, 20), (12, 19), (12, 20)}
    assert up[0:4, :].max() == 0 and up[:, 0:8].max() == 0


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = CBAMBlock("FC", 3, channels=8, ratio=2, spatial_bn=False)

    def forward(self, x):
        return self.attn(x)


class SquareFinder(nn.Module):
    """Stem (4x4 average of brightness) -> CBAM whose spatial gate is high where it is bright."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4, bias=False)
        self.layer1 = nn.Sequential(Block())
        self.head = nn.Linear(8, 2)
        with torch.no_grad():
            self.stem.weight.fill_(1 / 48)
            self.layer1[0].attn.spatial.conv.weight.fill_(0.5)

    def forward(self, x):
        return self.head(self.layer1(self.stem(x)).mean((2, 3)))


def test_overlay_peak_lies_over_the_bright_square():
    pixels = np.zeros((64, 96, 3), np.uint8)
    pixels[40:56, 12:28] = 255                     # the square: rows 40..55, cols 12..27
    image = Image.fromarray(pixels)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    cap = capture_attention(SquareFinder().eval(), x)
    (record,) = cap.layers
    assert record.name == "layer1.0" and record.spatial.shape == (1, 16, 24)
    values = upsample(record.spatial[0], (64, 96))
    row, col = np.unravel_index(values.argmax(), values.shape)
    assert 40 <= row < 56 and 12 <= col < 28
    # the rendered overlay (a monotonic colormap) is brightest over the square's centre
    gray = np.asarray(overlay(image, record.spatial[0], cmap="gray", alpha=1.0, stretch=True))[..., 0]
    rows, cols = np.nonzero(gray == gray.max())
    assert 44 <= rows.min() and rows.max() < 52 and 16 <= cols.min() and cols.max() < 24


def test_overlay_blends_with_alpha_on_a_fixed_scale():
    image = Image.new("RGB", (8, 8), (100, 100, 100))
    gray = overlay(image, np.full((2, 2), 0.5), cmap="gray", alpha=0.5)
    assert np.asarray(gray)[0, 0].tolist() == [114, 114, 114]    # 0.5*100 + 0.5*(0.5*255 ~ 127.5)
    assert np.asarray(overlay(image, np.ones((2, 2)), cmap="gray", alpha=0.0))[3, 3].tolist() == [100] * 3
    with pytest.raises(ValueError, match="alpha must be between 0 and 1, got 1.5"):
        overlay(image, np.ones((2, 2)), alpha=1.5)


def test_stretch_uses_the_maps_own_range():
    image = Image.new("RGB", (4, 4))
    m = np.array([[0.4, 0.6]])
    fixed = np.asarray(overlay(image, m, cmap="gray", alpha=1.0))
    stretched = np.asarray(overlay(image, m, cmap="gray", alpha=1.0, stretch=True))
    assert stretched.max() == 255 and stretched.min() == 0
    assert 90 < fixed.min() and fixed.max() < 165


def test_maps_compared_side_by_side_share_one_range():
    """A map before and after an edit: one range over both, so one value gets one colour."""
    before = SpatialView(np.array([[0.0, 2.0]]), "Grad-CAM", False, "class evidence")
    after = SpatialView(np.array([[1.0, 4.0]]), "Grad-CAM", False, "class evidence")
    assert joint_range([before, after], False) == (0.0, 4.0)
    image = Image.new("RGB", (2, 1))
    drawn = [np.asarray(overlay(image, v.values, cmap="gray", alpha=1.0, cells=True, value_range=(0.0, 4.0)))[0, :, 0]
             for v in (before, after)]
    assert drawn[0].tolist() == [0, 128] and drawn[1].tolist() == [64, 255]    # 2.0 is mid-grey in both
    assert after.scale_caption(False, (0.0, 4.0)) == "0.00 to 4.00: class evidence, one scale for the maps side by side"
    gate = SpatialView(np.array([[0.2, 0.6]]), "gate", True, "gate value")
    off = SpatialView(np.ones((1, 2)), "gate", True, "gate value", note="switched off")
    assert joint_range([gate, off], False) == (0.0, 1.0)                        # gates: the fixed scale
    assert joint_range([gate, off], True) == pytest.approx((0.2, 0.6))         # stretched: what is drawn sets it
    assert gate.scale_caption(False, (0.0, 1.0)) == "0.00 to 1.00: gate value, fixed scale"
    assert gate.scale_caption(True) == "0.20 to 0.60: stretched to this map's range"


def test_maps_come_as_arrays_or_tensors_of_one_image():
    expected = upsample(np.array([[0.0, 1.0]]), (2, 4))
    np.testing.assert_array_equal(upsample(torch.tensor([[[0.0, 1.0]]], dtype=torch.bfloat16), (2, 4)), expected)
    for bad in (np.zeros((2, 2, 2)), np.zeros(4), np.zeros((0, 3))):
        with pytest.raises(ValueError, match=r"an attention map must be \[h, w\], got shape"):
            upsample(bad, (4, 4))
    with pytest.raises(ValueError, match="no attention maps to draw"):
        spatial_grid_figure(Image.new("RGB", (8, 8)), [])


def grid_of(image, records, top_k: int = 8, **looks):
    """The overview figure of a capture's records: stage rows of (title, map), as an Inspection draws it."""
    views = [BlockView.of(r, top_k) for r in records]
    stages = sorted({v.stage for v in views})
    return spatial_grid_figure(image, [[(v.title, v.map) for v in views if v.stage == s] for s in stages], **looks)


def test_one_nan_cell_does_not_flatten_a_stretched_map():
    image = Image.new("RGB", (8, 4))
    clean = np.asarray(overlay(image, np.array([[0.4, 0.6]]), cmap="gray", alpha=1.0, stretch=True, cells=True))
    broken = np.asarray(overlay(image, np.array([[0.4, 0.6, np.nan, np.inf]]), cmap="gray", alpha=1.0,
                                stretch=True, cells=True))
    assert clean[0, 0, 0] == broken[0, 0, 0] == 0 and clean[0, 7, 0] == broken[0, 3, 0] == 255


def test_channel_chart_one_artist_labels_and_mean():
    w = np.full(2048, 0.1)
    w[[101, 100, 900]] = [1.0, 0.99, 0.98]
    fig = channel_weights_figure(w, top_k=3)
    ax = fig.axes[0]
    bars, top_bars = ax.patches                    # two stairs artists, not 2048 rectangles
    assert np.flatnonzero(top_bars.get_data().values).tolist() == [100, 101, 900]
    assert top_bars.get_facecolor() != bars.get_facecolor()
    # 100 sits next to the stronger 101: its label would print over 101's, so only the bar shows
    assert [(t.get_text(), t.xy[0]) for t in ax.texts] == [("101", 101), ("900", 900)]
    assert ax.get_ylim() == (0, 1.08)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["top 3", "mean 0.101"]
    sorted_fig = channel_weights_figure(np.linspace(1, 0, 2048), sort=True, top_k=2, fixed_scale=False)
    assert not sorted_fig.axes[0].texts       # sorted, the top-k are listed in the legend, not over the bars
    assert [t.get_text() for t in sorted_fig.axes[0].get_legend().get_texts()] == [
        "top 2", "#0: 1.000", "#1: 1.000", "mean 0.500"]
    assert np.flatnonzero(sorted_fig.axes[0].patches[1].get_data().values).tolist() == [0, 1]
    assert sorted_fig.axes[0].get_xlabel() == "channels sorted by weight (rank)"
    assert sorted_fig.axes[0].get_xlim() == (0.5, 2048.5)                  # ranks 1..C
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_weights_outside_zero_one_stay_on_the_chart_and_a_batch_is_refused():
    w = np.array([0.2, 0.5, 2.5, -1.0, 0.4, 0.9, 1.7, 0.3])
    ax = channel_weights_figure(w, top_k=3).axes[0]
    assert ax.get_ylim() == (-1.0, 2.5 * 1.05)
    assert channel_weights_chart(w)["layer"][0]["encoding"]["y"]["scale"]["domain"] == [-1.0, 2.5 * 1.05]
    assert channel_weights_figure(w[None]).axes[0].get_ylim() == (-1.0, 2.5 * 1.05)   # one image's [1, C] row
    for bad in (np.ones((2, 8)), np.ones(0)):
        with pytest.raises(ValueError, match=r"weights must be one block's \[C\] channel weights, got shape"):
            channel_weights_figure(bad)


def test_labels_are_spaced_strongest_first():
    assert spaced([5, 6, 8, 13, 17, 40], gap=4) == [5, 13, 17, 40]
    assert spaced([6, 5, 40], gap=4) == [6, 40]
    assert spaced([3, 2, 1], gap=0.5) == [3, 2, 1]     # few channels: every label fits


def test_browser_chart_highlights_every_top_channel_and_labels_those_that_fit():
    w = np.full(128, 0.2)
    w[[5, 6, 8, 60]] = [1.0, 1.0, 0.9, 0.8]
    spec = channel_weights_chart(w, top_k=4)
    bars, labels, _ = spec["layer"]
    assert bars["encoding"]["color"]["condition"] == {"test": "datum.top", "value": TOP_BAR}
    rows = spec["datasets"]
    top = [r["channel"] for r in rows[bars["data"]["name"]] if r["top"]]
    assert top == [5, 6, 8, 60]
    assert [r["channel"] for r in rows[labels["data"]["name"]]] == [5, 60]   # 6 and 8 would overlap 5
    assert bars["mark"]["type"] == "rect"                  # a bar fills 0.8 of its slot: never overlaps the next
    assert bars["transform"] == [{"calculate": "datum.channel - 0.4", "as": "left"},
                                 {"calculate": "datum.channel + 0.4", "as": "right"}]
    assert (bars["encoding"]["x"]["field"], bars["encoding"]["x2"]["field"]) == ("left", "right")
    sorted_spec = channel_weights_chart(w, sort=True, top_k=4)
    sorted_rows = sorted_spec["datasets"][sorted_spec["layer"][0]["data"]["name"]]
    assert [r["channel"] for r in sorted(sorted_rows, key=lambda r: r["rank"])[:4]] == [5, 6, 8, 60]
    assert min(r["rank"] for r in sorted_rows) == 1                    # rank 1 is the strongest channel


@pytest.mark.slow
@pytest.mark.parametrize("sort", [False, True])
def test_browser_chart_is_valid_vega_lite(sort):
    import altair as alt
    w = np.random.default_rng(0).random(2048)
    spec = channel_weights_chart(w, sort=sort, top_k=32)
    assert alt.LayerChart.from_dict(spec, validate=True).to_dict()["layer"][0]["mark"] == {"type": "rect"}


def test_depth_summary_has_one_box_per_block():
    fig = channel_depth_figure(["a", "b", "c"], [np.full(4, 0.2), np.full(8, 0.5), np.full(2, 0.9)])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    medians = [line.get_ydata()[0] for line in ax.lines if line.get_color() == "#d62728"]
    assert medians == pytest.approx([0.2, 0.5, 0.9])


@pytest.fixture
def capture_and_image(tiny_model):
    image = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    return capture_attention(tiny_model, x, channel_maps=8), image


def test_spatial_view_labels_what_it_shows(capture_and_image, kind):
    cap, _ = capture_and_image
    view = spatial_view(cap.layers[2], top_k=4)
    if kind == "cbam":
        assert view.absolute and view.label == "spatial attention (CBAM gate)"
        np.testing.assert_array_equal(view.values, cap.layers[2].spatial[0].numpy())
    else:
        assert not view.absolute and view.label == "where the top-4 weighted channels fire (not a gate)"
        np.testing.assert_allclose(view.values, cap.layers[2].activity(4)[0].numpy())


def test_overview_grid_is_stage_by_block(capture_and_image, kind):
    cap, image = capture_and_image
    fig = grid_of(image, cap.layers)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["layer1.0 (16x16)", "layer1.1 (16x16)", "layer2.0 (8x8)", "layer2.1 (8x8)",
                      "layer3.0 (4x4)", "layer3.1 (4x4)", "layer4.0 (2x2)", "layer4.1 (2x2)"]
    assert (len(fig.axes) == 9) == (kind == "cbam")   # + one colorbar for absolute gates only
    stretched = "each map stretched to its own range: colours do not compare across blocks"
    assert fig.get_suptitle().endswith(stretched) == (kind != "cbam")
    wide = grid_of(image, cap.layers, top_k=20)   # more than stage 1's 8 channels and the 8 maps kept
    titled = [ax.get_title() for ax in wide.axes if ax.get_title()]
    if kind == "cbam":
        assert titled[0] == "layer1.0 (16x16)"
    else:
        assert titled[:3] == ["layer1.0 (16x16), all 8 channels", "layer1.1 (16x16), all 8 channels",
                              "layer2.0 (8x8)"]
        assert wide.get_suptitle().startswith("where the top-8 weighted channels fire")


def test_downloaded_figures_can_show_feature_map_cells(capture_and_image):
    cap, image = capture_and_image
    view = spatial_view(cap.layers[-1], top_k=4)
    for cells in (False, True):
        fig = spatial_view_figure(image, view, cells=cells)
        np.testing.assert_array_equal(fig.axes[0].images[0].get_array(),
                                      np.asarray(overlay(image, view.values, stretch=not view.absolute, cells=cells)))
        grid = grid_of(image, cap.layers, top_k=4, cells=cells)
        np.testing.assert_array_equal(grid.axes[7].images[0].get_array(),
                                      np.asarray(overlay(image, view.values, stretch=not view.absolute, cells=cells)))


def test_heatmap_figure_has_colorbar_in_gate_units(capture_and_image, kind):
    cap, image = capture_and_image
    fig = heatmap_figure(image, cap.layers[0].channel[:, :1].expand(4, 4).numpy(), title="t")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylim() == (0.0, 1.0)
    assert fig.axes[1].get_ylabel() == "gate value (fixed 0-1 scale)"


@pytest.mark.slow
def test_viz_never_touches_pyplot():
    """pyplot's global figure manager is not thread-safe; a server must never load it."""
    code = ("import sys, numpy as np, viz; from PIL import Image; "
            "viz.figure_png(viz.channel_weights_figure(np.ones(8))); "
            "viz.figure_png(viz.heatmap_figure(Image.new('RGB', (8, 8)), np.ones((2, 2)))); "
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def draw(fig):
    """Render `fig` with Agg (no pyplot) and return its renderer, for text extents in pixels."""
    canvas = FigureCanvasAgg(fig)
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # e.g. "constrained_layout not applied"
        canvas.draw()
    return canvas.get_renderer()


def inside(box, outer) -> bool:
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1


@pytest.mark.parametrize("sort, top_k", [(True, 1), (True, 5), (True, 10), (True, 11), (True, 12), (True, 32),
                                         (False, 1), (False, 12), (False, 32)])
def test_channel_chart_legend_and_listing_never_overlap_the_bars(sort, top_k):
    w = np.random.default_rng(0).random(2048)
    fig = channel_weights_figure(w, sort=sort, top_k=top_k, title="layer4.2 (SE): 2048 channel weights")
    renderer = draw(fig)
    ax = fig.axes[0]
    legend = ax.get_legend()
    listing = [f"#{c}: {w[c]:.3f}" for c in np.argsort(-w, kind="stable")[:min(top_k, 10)]] if sort else []
    more = [f"... and {top_k - 10} more"] if sort and top_k > 10 else []
    assert [t.get_text() for t in legend.get_texts()] == [f"top {top_k}", *listing, *more, f"mean {w.mean():.3f}"]
    assert legend.get_frame_on() and legend.get_frame().get_alpha() == 1    # an opaque background
    box = legend.get_window_extent(renderer)
    assert box.x0 >= ax.bbox.x1 and inside(box, fig.bbox)                    # right of the bars and mean line
    rows = [t.get_window_extent(renderer) for t in legend.get_texts()]
    assert all(upper.y0 >= lower.y1 for upper, lower in zip(rows, rows[1:]))  # one row under the other
    assert inside(ax.title.get_window_extent(renderer), fig.bbox)
    assert all(not t.get_window_extent(renderer).overlaps(box) for t in ax.texts)   # bar labels


LONG_TITLE = "layer4.1: where the top-5 weighted channels fire (not a gate)"


@pytest.mark.parametrize("colorbar", [True, False])
def test_heatmap_title_is_wrapped_inside_the_figure(colorbar):
    image = Image.new("RGB", (128, 128), (90, 90, 90))
    fig = heatmap_figure(image, np.random.default_rng(0).random((4, 4)), title=LONG_TITLE, colorbar=colorbar)
    renderer = draw(fig)
    ax = fig.axes[0]
    title = ax.title.get_window_extent(renderer)
    line = ax.title.get_fontsize() * fig.dpi / 72
    assert ax.get_title() == LONG_TITLE
    assert inside(title, fig.bbox) and title.height > 1.5 * line           # whole, on two lines
    assert title.y0 >= ax.images[0].get_window_extent(renderer).y1            # above the image
    if colorbar:
        label = fig.axes[1].yaxis.label.get_window_extent(renderer)
        assert inside(label, fig.bbox) and not label.overlaps(title)


def test_spatial_view_figure_labels_its_colour_scale(capture_and_image, kind):
    cap, image = capture_and_image
    record = cap.layers[3]
    view = spatial_view(record, 0, 4)
    fig = spatial_view_figure(image, view, title=f"{record.name}: {view.label}")
    assert view.note == ""
    if kind == "cbam":
        assert view.units == "gate value"
        assert fig.axes[0].get_title() == "layer2.1: spatial attention (CBAM gate)"
        assert fig.axes[1].get_ylabel() == "gate value (fixed 0-1 scale)"
        stretched = spatial_view_figure(image, view, stretch=True)
        assert stretched.axes[0].get_title() == "spatial attention (CBAM gate)"
        assert stretched.axes[1].get_ylabel() == "gate value (stretched to this map)"
    else:
        assert view.units == "mean activation"
        assert fig.axes[0].get_title() == "layer2.1: where the top-4 weighted channels fire (not a gate)"
        assert fig.axes[1].get_ylabel() == "mean activation (stretched to this map)"
        assert fig.axes[1].get_ylim() == pytest.approx((view.values.min(), view.values.max()))   # the map's range


def test_spatial_view_without_channel_maps_says_how_to_keep_them(tiny_model, kind):
    cap = capture_attention(tiny_model, torch.rand(1, 3, 64, 64))           # no channel_maps
    record = cap.layers[0]
    if kind == "cbam":                                                       # CBAM's gate needs none
        assert spatial_view(record).label == "spatial attention (CBAM gate)"
        return
    with pytest.raises(ValueError) as from_record:
        record.activity()
    assert "channel_maps=K" in str(from_record.value)
    for show in (lambda: spatial_view(record), lambda: grid_of(Image.new("RGB", (64, 64)), cap.layers)):
        with pytest.raises(ValueError) as from_view:
            show()
        assert str(from_view.value) == str(from_record.value)


def test_an_all_zero_activity_map_says_so_instead_of_drawing_it():
    maps = -torch.rand(1, 4, 2, 2)                          # the top channels never fire: activity 0
    record = AttentionRecord("layer4.1", "layer4.1.attn", "se", 4, 1, torch.rand(1, 16), None, (2, 2),
                             torch.arange(4)[None], maps)
    view = spatial_view(record, 0, 3)
    assert view.label == "where the top-3 weighted channels fire (not a gate)"
    assert view.note == "none of the top-3 weighted channels fires on this image (all zero)"
    assert not view.values.any()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    fig = spatial_view_figure(image, view, title=f"layer4.1: {view.label}")
    renderer = draw(fig)
    (ax,) = fig.axes                                         # no colorbar: there is no range to show
    assert ax.get_title() == ("layer4.1: where the top-3 weighted channels fire (not a gate)\n"
                              "none of the top-3 weighted channels fires on this image (all zero)")
    assert inside(ax.title.get_window_extent(renderer), fig.bbox)
    np.testing.assert_array_equal(ax.images[0].get_array(), np.asarray(image))   # the bare image
    one = spatial_view(record, 0, 1)
    assert (one.label, one.note) == ("where the top-weighted channel fires (not a gate)",
                                     "the top-weighted channel does not fire on this image (all zero)")
    grid = grid_of(image, [record], top_k=3)
    assert grid.axes[0].get_title() == "layer4.1 (2x2) (all zero)"
    np.testing.assert_array_equal(grid.axes[0].images[0].get_array(), np.asarray(image))


@pytest.mark.parametrize("cmap", ["gray", "viridis"])
def test_colour_strip_has_an_edge_so_its_ends_show_on_any_page(cmap):
    strip = np.asarray(colorbar_strip(cmap, width=64, height=10))
    assert strip.shape == (10, 64, 3)
    edge = np.concatenate([strip[0], strip[-1], strip[:, 0], strip[:, -1]])
    assert (edge == 128).all()                                   # a grey frame, visible on white and on black
    assert strip[5, 1].tolist() == [round(255 * c) for c in __import__("matplotlib").colormaps[cmap](0.0)[:3]]
    assert strip[5, -2].tolist() == [round(255 * c) for c in __import__("matplotlib").colormaps[cmap](1.0)[:3]]


def test_user_text_with_dollar_signs_is_drawn_literally():
    """A class or file name like `$\\nope$` would be read as maths: a bad formula fails the figure."""
    from viz.study import class_maps_figure, excitation_figure
    name = r"a $\nope$ cat"
    image = Image.new("RGB", (32, 32))
    figures = [heatmap_figure(image, np.ones((4, 4)) * 0.5, title=name),
               channel_weights_figure(np.linspace(0, 1, 8), title=name),
               excitation_figure(np.ones((2, 8)) * 0.5, [name, "dog"], name),
               class_maps_figure(np.ones((2, 4, 4)) * 0.5, [name, "dog"], name, image_size=16)]
    for fig in figures:
        assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures[0].axes[0].get_title() == r"a \$\nope\$ cat"      # escaped: drawn as typed


def curve_panel(title: str = "layer3.1", seed: int = 0):
    from viz.faithfulness import CurvePanel
    rng = np.random.default_rng(seed)
    fractions = np.linspace(0, 1, 6)
    return CurvePanel(title, fractions, {"gate": rng.random(6), "Grad-CAM of '$x$'": rng.random(6)},
                      {"gate": rng.random(6), "Grad-CAM of '$x$'": rng.random(6)}, rng.random((8, 6)),
                      rng.random((8, 6)))


def test_faithfulness_figures_draw_each_map_and_the_random_band():
    from viz.faithfulness import faithfulness_depth_figure, faithfulness_figure, faithfulness_grid_figure
    panel = curve_panel()
    mean, low, high = panel.random_curves("insertion")
    np.testing.assert_allclose(mean, panel.random_insertion.mean(0))
    np.testing.assert_allclose([low, high], np.quantile(panel.random_insertion, [0.05, 0.95], axis=0))
    fig = faithfulness_figure(panel)
    deletion_ax, insertion_ax = fig.axes
    assert [line.get_label() for line in insertion_ax.lines] == ["random maps, mean", "gate", r"Grad-CAM of '\$x\$'"]
    np.testing.assert_allclose(insertion_ax.lines[1].get_ydata(), panel.insertion["gate"])
    assert len(insertion_ax.collections) == 1                        # the band: one artist
    assert Image.open(io.BytesIO(figure_png(fig))).size == (770, 352)
    grid = faithfulness_grid_figure([curve_panel(f"layer{i}", i) for i in range(3)], "star $1")
    assert len([ax for ax in grid.axes if ax.axison]) == 6 and "star \\$1" in grid.get_suptitle()
    with pytest.raises(ValueError, match="no blocks to draw"):
        faithfulness_grid_figure([])
    depth = faithfulness_depth_figure(["a", "b"], {"block map": [0.2, None]}, {"block map": [0.6, 0.7]},
                                      ([0.4, 0.5], [0.3, 0.4], [0.5, 0.6]), ([0.4, 0.5], [0.3, 0.4], [0.5, 0.6]),
                                      {"block map": [1.0, 0.5]})
    assert len(depth.axes) == 3 and np.isnan(depth.axes[0].lines[1].get_ydata()[1])
