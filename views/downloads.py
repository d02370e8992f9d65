"""Downloads: every figure as PNG, rendered when clicked, and all weights as JSON or CSV."""
import json
import re
from pathlib import Path

import streamlit as st

import pretrained
from viz import figure_png

from .subject import Subject
from .widgets import Display, pick_block

TITLE = "Downloads"
NEEDS_ATTENTION = True


def render(subject: Subject, display: Display) -> None:
    inspection = subject.inspection
    st.markdown("Every figure as PNG (rendered when you click), all weights as JSON or CSV.")
    name = pick_block(inspection)
    model_name = inspection.model.name
    while Path(model_name).suffix.lower() in pretrained.WEIGHTS_SUFFIXES:      # mine.pth.tar -> mine
        model_name = Path(model_name).stem
    stem = re.sub(r"[^\w.-]+", "-", f"{Path(subject.picture.name).stem}_{model_name}")   # one file set per image and model
    c1, c2 = st.columns(2)
    looks = dict(cmap=display.cmap, alpha=display.alpha, stretch=display.stretch, cells=display.cells)

    def offer(column, label: str, render, file_name: str, mime: str = "image/png") -> None:
        """A download rendered on click. No rerun after it: a rerun would give the other buttons
        new files, and a second click made during it would find its file gone."""
        column.download_button(label, render, file_name=file_name, mime=mime, on_click="ignore")

    offer(c1, f"{name} channel weights (PNG)", lambda: figure_png(inspection.channels_figure(
        name, sort=display.sort, top_k=display.top_k)), f"{stem}_{name}_channels.png")
    offer(c1, f"{name} spatial map (PNG)", lambda: figure_png(inspection.map_figure(
        name, top_k=display.top_k, **looks)), f"{stem}_{name}_spatial.png")
    offer(c1, "Overview of all blocks (PNG)", lambda: figure_png(inspection.overview_figure(
        top_k=display.top_k, **looks)), f"{stem}_overview.png")
    offer(c1, "Channel weights by depth (PNG)", lambda: figure_png(inspection.depth_figure()), f"{stem}_depth.png")
    offer(c2, "All weights and predictions (JSON)", lambda: json.dumps(inspection.to_json(display.top_k),
                                                                       allow_nan=False),
          f"{stem}_attention.json", "application/json")
    offer(c2, "All channel weights (CSV)", inspection.to_csv, f"{stem}_weights.csv", "text/csv")
