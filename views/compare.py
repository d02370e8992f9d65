"""Compare: the image through two or three models side by side, row by row (predictions, maps,
channel weights, and on request deletion and insertion), so the columns line up. The current model
leads when it is not one of the bundled SE/ECA/CBAM trio (a plain baseline, an ImageNet model,
your checkpoint)."""
from dataclasses import replace

import streamlit as st

import pretrained
from blocks import attention_kind
from viz.markup import md
from viz.spatial_view import MIXED_SCALES

from .faithfulness_panel import COST, choose_fill, compare_cell
from .messages import shown
from .models import load_model, model_entries, unavailable
from .session import KEPT_DIGESTS, sha, trim
from .subject import Subject
from .widgets import Display, choose_map, show_overlay, show_predictions

TITLE = "Compare"
NEEDS_ATTENTION = False


def render(subject: Subject, display: Display) -> None:
    entries, model, model_key = model_entries(), subject.model, subject.model_key
    current = f"{model.name} (yours)" if model.source == "file" else model.name
    trio = sorted((n for n, e in entries.items() if e.source == "bundled" and e.attention),
                  key=lambda n: attention_kind(entries[n].attention).order)
    options = list(dict.fromkeys([current, *entries]))
    choices = st.session_state.setdefault("compare_choice", {})      # per current model, kept across images
    default = choices.get(model_key, trio if current in trio else [current, *trio[:2]])
    chosen = st.multiselect("Models to compare (2 or 3)", options, default=[n for n in default if n in options],
                            max_selections=3, key=f"compare_{sha(model_key.encode())[:12]}")
    choices[model_key] = chosen
    trim(choices, KEPT_DIGESTS)                                         # one entry per model tried: bounded
    inspection = subject.inspection
    chosen_block = st.session_state.get("chosen_block")
    stages = list(range(1, max(len(inspection.stages), 1) + 1))
    stage = st.selectbox("Stage to show", stages, key="compare_stage", index=(
        inspection.stage_of(chosen_block) if chosen_block in inspection.block_names else len(stages) - 1))
    if len(chosen) < 2:
        st.info("Choose two or three models above to see them side by side.")
    kinds = st.empty()                                 # filled once the maps are known
    cams = choose_map() == "gradcam"
    subjects = {}
    for column, name in zip(st.columns(max(1, len(chosen))), chosen):
        with column:
            st.markdown(f"**{md(name)}**")
            try:
                subjects[name] = subject if name == current else subject.with_model(load_model(name), name)
            except pretrained.ModelUnavailable as e:
                st.warning(unavailable(entries[name], e))
                continue
            except (pretrained.CheckpointError, ValueError) as e:
                st.warning(shown(e))
                continue
            show_predictions(subjects[name].inspection, 3)
    views = {}
    for column, name in zip(st.columns(max(1, len(chosen))), chosen):
        if name not in subjects:
            continue
        result = subjects[name].inspection
        if not result.has_attention:
            column.caption("no attention blocks (baseline)")
            continue
        view = result.view(result.stages[min(stage, len(result.stages)) - 1][-1], display.top_k)
        views[name] = replace(view, map=subjects[name].grad_cams()[view.name]) if cams else view
        with column:
            show_overlay(result, views[name].map, display,       # named: a phone stacks the columns
                         caption=f"{md(name)} · {view.name}: {views[name].map.label}")
    for column, name in zip(st.columns(max(1, len(chosen))), chosen):
        if name in views:
            with column:
                view = views[name]
                st.vega_lite_chart(subjects[name].channel_chart(view.name, display.sort, display.top_k),
                                   width="stretch")
                st.caption(f"{md(name)} · {view.attention.display} block `{view.name}`: "
                           f"{subjects[name].inspection.parameters(view.name):,} parameters, {view.channels} channel weights")
    if len({v.map.absolute for v in views.values()}) > 1:
        kinds.info(MIXED_SCALES)
    if views and st.toggle(f"Does each model use what its map marks? Deletion and insertion ({COST})",
                           key="compare_faithfulness"):
        fill = choose_fill("compare_fill")
        with st.spinner("Scoring perturbed images..."):
            for column, name in zip(st.columns(max(1, len(chosen))), chosen):
                if name in views:
                    with column:
                        compare_cell(subjects[name], views[name].name, fill, display.top_k)
