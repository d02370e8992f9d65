"""Does the model use what a map marks? Deletion and insertion (`lens.faithfulness`) as the Block,
Overview and Compare views show them: per block on request, cached per (image, model, block,
class, fill) by the subject, so a display control never recomputes them."""
import streamlit as st

from lens.faithfulness import FILL_NAMES, WHAT_IT_SHOWS
from lens.glossary import GLOSSARY
from viz.curves_chart import curves_chart
from viz.markup import md

from .session import KEPT_DIGESTS, trim
from .subject import Subject
from .widgets import arrow

COST = "about 150 forward passes per block with the blur or mean fill, about 900 with ROAD"
AUC_COLUMNS = {"deletion AUC": st.column_config.NumberColumn(format="%.3f", help=GLOSSARY["deletion AUC"]),
               "insertion AUC": st.column_config.NumberColumn(format="%.3f", help=GLOSSARY["insertion AUC"])}


def choose_fill(key: str) -> str:
    return st.selectbox("Removed pixels become", list(FILL_NAMES), format_func=FILL_NAMES.get, key=key)


def block_section(subject: Subject, block: str, top_k: int) -> None:
    """The Block view's panel: curves, AUCs beside baselines and the band, one sentence."""
    st.subheader("Does the model use what this map marks?")
    if not st.toggle(f"Measure it: remove what each map ranks highest and watch the class's probability ({COST})",
                     key="faithfulness"):
        return
    top = subject.inspection.predictions(5)
    left, right = st.columns(2)
    chosen = left.selectbox("Class", range(len(top)), key="faith_class",
                            format_func=lambda i: f"{top[i].label} ({top[i].probability:.1%})")
    with right:
        fill = choose_fill("faith_fill")
    with st.spinner("Scoring perturbed images..."):
        panel = subject.faithfulness(block, top[chosen].index, fill, top_k)
    lines, band = panel.chart_rows()
    for column, curve in zip(st.columns(2), ("deletion", "insertion")):
        column.vega_lite_chart(curves_chart(lines, band, curve), width="stretch")
    st.dataframe(arrow(panel.rows()), hide_index=True, width="stretch", column_config=AUC_COLUMNS)
    st.markdown(md(panel.sentence(panel.own)))
    with st.expander("What this does and does not show"):
        st.markdown(WHAT_IT_SHOWS)


def overview_section(subject: Subject, top_k: int) -> None:
    """Every block's AUCs in one table, computed on request with progress."""
    st.subheader("Does the model use what each block's map marks?")
    fill = choose_fill("overview_fill")
    requested = st.session_state.setdefault("faithfulness_requested", {})
    key = (subject.picture.digest, subject.model_key, fill)
    if st.button(f"Measure every block ({COST})", key="measure_blocks"):
        requested[key] = True
        trim(requested, KEPT_DIGESTS)
    if key not in requested:
        return
    names, target = subject.inspection.block_names, subject.inspection.predictions(1)[0].index
    progress, rows = st.progress(0.0), []
    for done, name in enumerate(names):
        progress.progress(done / len(names), text=f"Scoring {name} ({done + 1} of {len(names)})...")
        panel = subject.faithfulness(name, target, fill, top_k)
        own = panel.own
        rows.append({"block": name, "deletion AUC": own.deletion_auc, "by deletion": own.deletion_verdict,
                     "insertion AUC": own.insertion_auc, "by insertion": own.insertion_verdict,
                     "Grad-CAM deletion": panel.grad_cam.deletion_auc,
                     "Gaussian deletion": panel.gaussian.deletion_auc, "random band (deletion)": panel.band("deletion")})
    progress.empty()
    st.dataframe(arrow(rows), hide_index=True, width="stretch", column_config={
        **AUC_COLUMNS, **{c: st.column_config.NumberColumn(format="%.3f") for c in ("Grad-CAM deletion",
                                                                                   "Gaussian deletion")}})
    st.caption(f"Each block's own map, for the top class '{md(subject.inspection.predictions(1)[0].label)}'. "
               + GLOSSARY["random band"])


def compare_cell(subject: Subject, block: str, fill: str, top_k: int) -> None:
    """One model's AUCs at its block, for Compare's columns."""
    panel = subject.faithfulness(block, subject.inspection.predictions(1)[0].index, fill, top_k)
    own = panel.own
    st.markdown(f"Deletion AUC **{own.deletion_auc:.3f}** ({own.deletion_verdict}; random {panel.band('deletion')})  \n"
                f"Insertion AUC **{own.insertion_auc:.3f}** ({own.insertion_verdict}; random {panel.band('insertion')})")
