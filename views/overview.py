"""Overview: every block's map at once on one scale where the maps allow it, the channel weights by
depth, whether the blocks weight the same channels for another image, and on request every block's
deletion and insertion AUCs."""
from dataclasses import replace

import streamlit as st

from viz import overlay, shared_scale
from viz.channels import channel_agreement_chart, channel_depth_chart

from .faithfulness_panel import overview_section
from .picture import SAMPLES, sample_picture
from .subject import Subject
from .widgets import Display, choose_map, colorbar_png, png

TITLE = "Overview"
NEEDS_ATTENTION = True


def render(subject: Subject, display: Display) -> None:
    inspection = subject.inspection
    views = {v.name: v for v in inspection.views(display.top_k)}
    if choose_map() == "gradcam":
        cams = subject.grad_cams()
        views = {name: replace(view, map=cams[name]) for name, view in views.items()}
    fixed = shared_scale([v.map for v in views.values()], display.stretch)
    st.markdown(f"**All blocks** -- {views[inspection.block_names[-1]].map.label}")
    st.columns(2)[0].image(colorbar_png(display.cmap), width="stretch", caption=(
        "0.00 to 1.00: gate value, fixed scale: the same colour means the same gate in every block" if fixed else
        "low to high of each map: every map is stretched to its own range, so colours do not compare across blocks"))
    slots = max(map(len, inspection.stages))
    per_row = max(1, 4 // slots)                  # small maps, short page: ResNet-18 puts two stages a row
    for first in range(0, len(inspection.stages), per_row):
        columns = st.columns(per_row * slots)
        for j, names in enumerate(inspection.stages[first:first + per_row]):
            for column, name in zip(columns[j * slots:], names):
                v = views[name]
                column.image(png(overlay(inspection.image, v.map.values, cmap=display.cmap,
                                         alpha=0.0 if v.map.note else display.alpha, stretch=not fixed,
                                         cells=display.cells)), width="stretch", caption=v.title)
    st.altair_chart(channel_depth_chart(inspection.block_names, [v.weights for v in views.values()]),
                    width="stretch")
    st.subheader("Same channels for every image?")
    others = [s for s in SAMPLES if s["file"] != subject.picture.name]
    titles = [s["title"] for s in others]
    other = others[titles.index(st.selectbox("Compare this image's channel weights with", titles, key="agree_with"))]
    agreement = inspection.agreement(subject.with_picture(sample_picture(other)).inspection)
    st.altair_chart(channel_agreement_chart(inspection.block_names, agreement), width="stretch")
    st.caption("Correlation, block by block, of the two images' channel weights: 1 means the block excites the "
               "same channels whatever the image. The SE paper (Sec. 7.2, Fig. 6) finds early blocks "
               "class-agnostic and later ones class-specific; a gap marks a block whose gate is saturated.")
    overview_section(subject, display.top_k)
