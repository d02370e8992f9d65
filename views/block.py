"""Block: one block's channel weights and map, then on request its Grad-CAM, its sanity check and
whether the prediction depends on what its map marks; what the block computes; on a sample with a
mask, how well each map sits on the object."""
import math

import streamlit as st

from lens.agreement import CAM_READING, SCALE_FREE
from lens.card_notes import block_note
from lens.glossary import GLOSSARY
from lens.localisation import EXPLAINED, MEASURES
from lens.sanity import READING
from viz.markup import md

from .faithfulness_panel import block_section
from .messages import capitalised
from .subject import Subject
from .widgets import Display, arrow, pick_block, show_overlay

TITLE = "Block"
NEEDS_ATTENTION = True
MAP_COLUMN, NUMBER_COLUMN = 150, 62        # pixels: the baselines table's four columns fit a 390 px phone


def render(subject: Subject, display: Display) -> None:
    inspection = subject.inspection
    left, right = st.columns([2, 3])                 # the map at the top of the page, the pickers beside it
    with right:
        view = inspection.view(pick_block(inspection), display.top_k)
    with left:
        st.markdown(f"**{capitalised(view.map.label)}** of `{view.name}` ({view.map.size})")
        show_overlay(inspection, view.map, display)
    with right:
        st.markdown(f"**Channel weights** of `{view.name}` ({view.attention.display}, {view.channels} channels)")
        st.vega_lite_chart(subject.channel_chart(view.name, display.sort, display.top_k), width="stretch")
        st.caption(view.top.caption(marked=" (orange)"))
    if inspection.model.source == "bundled" and (note := block_note(inspection.model.name, view.name)):
        st.caption(note)
    if st.toggle("Grad-CAM: what raises a class's score at this block", key="show_cam",
                 help="Attribution (Selvaraju et al., ICCV 2017) at this block's output: where the features that "
                      "raise the chosen class's score lie. Attention is what the block weights; attribution is "
                      "what the prediction used. One backward pass per block and class."):
        attribution(subject, view, display)
    if st.toggle("Sanity check: re-initialise the weights from this block on", key="sanity",
                 help="Adebayo et al., NeurIPS 2018: run the image through copies of the model whose weights from "
                      "this block to the classifier are random, and see how much each map changes."):
        sanity(subject, view.name)
    block_section(subject, view.name, display.top_k)
    st.subheader("What this block computes")
    st.markdown(inspection.formula(view.name))
    if inspection.mask is not None:
        localisation(subject, view.name, display.top_k)


def attribution(subject: Subject, view, display: Display) -> None:
    """The block's Grad-CAM for a class of the top 5, and how far it ranks the cells as the block's
    own map does."""
    top = subject.inspection.predictions(5)
    chosen = st.selectbox("Class", range(len(top)), key="cam_class",
                          format_func=lambda i: f"{top[i].label} ({top[i].probability:.1%})")
    cam = subject.grad_cam(view.name, top[chosen].index)
    rho = subject.inspection.cam_agreement(view.name, cam, display.top_k)
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{md(capitalised(cam.label))}** at `{view.name}` ({cam.size})")
        show_overlay(subject.inspection, cam, display)
    with right:
        st.metric("Rank agreement with the block's map", "undefined (a flat map)" if rho != rho else f"{rho:+.2f}",
                  help=f"{GLOSSARY['rank agreement']} {SCALE_FREE}")
        st.caption(CAM_READING)


def sanity(subject: Subject, block: str) -> None:
    """How much the block's map and its Grad-CAM change when what the model learned from the block
    on is replaced by random weights, for several seeds, beside two random maps' null band (the
    shared model is untouched: copies are randomised)."""
    with st.spinner("Running the image through randomised copies of the model..."):
        result = subject.sanity(block)
    st.markdown(md(result.sentence("map")))
    st.markdown(md(result.sentence("grad_cam")))
    st.caption(READING)


def localisation(subject: Subject, block: str, top_k: int) -> None:
    """The block's map and its Grad-CAM scored against the sample's mask, beside the baselines."""
    rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}   # blank: undefined
            for row in subject.localisation(block, top_k)]
    st.subheader("On the object? Against baselines")
    st.dataframe(arrow(rows), hide_index=True, width="stretch",           # plain text cells: no markdown
                 column_config={"map": st.column_config.TextColumn("map", width=MAP_COLUMN),  # all fit on a phone
                                **{m: st.column_config.NumberColumn(m, format="%.2f", help=GLOSSARY[m],
                                                                    width=NUMBER_COLUMN) for m in MEASURES}})
    st.caption(EXPLAINED)
