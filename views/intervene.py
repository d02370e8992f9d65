"""Intervene: switch one block's attention off (or zero its top-k channels) and see what that does to
the prediction, the block's map and Grad-CAM through the edited model. It opens on the block where
the model card measured an edit to cost the most (for others, the deepest block)."""
import streamlit as st

from lens.card_notes import costliest_block
from lens.intervention import explanation
from viz import SpatialView, joint_range
from viz.markup import md

from .messages import capitalised
from .subject import Subject
from .widgets import Display, pick_block, show_overlay, show_predictions

TITLE = "Intervene"
NEEDS_ATTENTION = True
EDITS = {"gate_off": "switch this block's attention off (gates = 1)", "channel_gate_off": "only its channel gate off",
         "spatial_gate_off": "only its spatial gate off", "zero_top_k": "zero its top-{k} channels"}


def render(subject: Subject, display: Display) -> None:
    inspection = subject.inspection
    card_block = costliest_block(inspection.model.name) if inspection.model.source == "bundled" else None
    name = pick_block(inspection, default=card_block)
    view = inspection.view(name, display.top_k)
    modes = {m: EDITS[m].format(k=len(view.top.channels)) for m in inspection.intervention_modes(name)}
    if st.session_state.get("edit_mode") not in modes:       # e.g. a CBAM-only edit after choosing an SE block
        st.session_state.pop("edit_mode", None)
    mode = st.radio("Edit", list(modes), horizontal=True, key="edit_mode", format_func=modes.get)
    after = subject.edited(name, mode, display.top_k)
    if mode == "zero_top_k":
        st.caption("Zeroed: " + view.top.caption())
    left, right = st.columns(2)
    with left:
        st.markdown("**Original**")
        show_predictions(inspection)
    with right:
        st.markdown(f"**With `{name}` edited**")
        show_predictions(after)
    top, now = inspection.predictions(1)[0], after.predictions(1)[0]
    p0, p1 = top.probability, after.probability(top.index)
    st.metric(f"Probability of '{md(top.label)}'", f"{p1:.2%}", f"{(p1 - p0) * 100:+.2f} points")
    st.markdown(explanation(after.edit, p0, p1, md(top.label), len(view.top.channels))
                + ("" if now.index == top.index else f" The top class is now '{md(now.label)}'."))
    st.caption("The edit changes the scale of one residual branch: the block outputs ReLU(shortcut + s × branch), "
               "with its attention s set to 1 where a gate is off or to 0 on zeroed channels, and the shortcut "
               "still carries the block's input past it. One image is an anecdote: try several before drawing "
               "conclusions about the model.")
    edited_map = after.edited_map(display.top_k)
    maps = st.columns(2)
    with maps[0]:
        show_pair(f"**{capitalised(view.map.label)}** of `{name}`", inspection, view.map, edited_map, display)
    with maps[1]:
        show_pair(f"**Grad-CAM of '{md(top.label)}'** at `{name}` (attribution)", inspection,
                  subject.grad_cam(name, top.index), subject.grad_cam(name, top.index, after), display)
    st.caption("Each pair is drawn on one colour scale, so a colour means the same value before and after the edit. "
               f"The edited Grad-CAM runs through the edited model: where the features at `{name}` raise the score "
               f"of '{md(top.label)}' once the edit has reached every block after it."
               + (" The edited block's own map is fixed by the edit (its note says how): what the edit does to "
                  "the blocks after it shows in the edited Grad-CAM." if edited_map.note else ""))


def show_pair(title: str, inspection, before: SpatialView, after: SpatialView, display: Display) -> None:
    """A map before and after an edit, side by side on one colour scale."""
    st.markdown(title)
    joint = joint_range([before, after], display.stretch)
    for column, shown, caption in zip(st.columns(2), (before, after), ("original", "edited")):
        with column:
            show_overlay(inspection, shown, display, caption, joint)
