"""Pieces every view draws the same way: the display settings, a map over the image with its colour
scale, the predictions table, the block picker and the map picker."""
import io
from dataclasses import dataclass

import pyarrow as pa
import streamlit as st

from lens import Inspection
from viz import DEFAULT_CMAP, SpatialView, colorbar_strip, overlay

from .session import sha

COLORMAPS = [DEFAULT_CMAP, "inferno", "cividis", "magma", "turbo", "jet", "gray"]    # perceptually uniform first
MAPS = {"attention": "the blocks' own maps", "gradcam": "Grad-CAM of the top class"}


@dataclass(frozen=True)
class Display:
    cmap: str
    alpha: float
    stretch: bool
    cells: bool
    sort: bool
    top_k: int


def png(image) -> bytes:
    """A PIL image as PNG at zlib level 1, the same pixels that `st.image` sends: it encodes at
    level 6: ~6 ms for a 128 px overlay, ~1.3 ms here, for ~15% more bytes."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@st.cache_resource(show_spinner=False, max_entries=len(COLORMAPS))
def colorbar_png(cmap: str) -> bytes:
    """The colour scale shown under the maps, encoded once per colormap."""
    return png(colorbar_strip(cmap))


def arrow(rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table, which `st.dataframe` sends as it is: a list goes through pandas
    first, 1 ms a table on every rerun."""
    return pa.Table.from_pylist(rows)


def show_predictions(inspection: Inspection, k: int = 5, notes: bool = True) -> None:
    """The top-k classes, under what is wrong with the model's output when something is (`notes`)."""
    if notes and inspection.output_note:
        st.error(inspection.output_note)
    rows = [{"class": p.label, "probability": 100 * p.probability} for p in inspection.predictions(k)]
    st.dataframe(arrow(rows), hide_index=True, width="stretch", column_config={"probability": st.column_config.ProgressColumn(
        "probability", format="%.2f%%", min_value=0.0, max_value=100.0)})   # 90.80%, 1.10%


def show_overlay(inspection: Inspection, shown: SpatialView, display: Display, caption: str = "",
                 joint: tuple[float, float] | None = None) -> None:
    """A map over the image with its colour scale and what the scale means (`joint`: a range shared
    with the maps beside it); a map with nothing to draw (its note says why) leaves the image bare,
    as the downloaded figure does."""
    st.image(png(overlay(inspection.image, shown.values, cmap=display.cmap, alpha=0.0 if shown.note else display.alpha,
                         stretch=shown.stretched(display.stretch), cells=display.cells, value_range=joint)),
             width="stretch", caption=caption or None)
    if shown.note:
        st.info(f"Nothing to draw: {shown.note}.")
        return
    st.image(colorbar_png(display.cmap), width="stretch", caption=shown.scale_caption(display.stretch, joint))


def pick_block(inspection: Inspection, default: str | None = None) -> str:
    """One stage and block choice for every view, remembered while a view without it is shown
    (Streamlit drops the state of widgets it does not draw). The widgets are keyed by the model's
    block list and the stage, so their labels can never name another model's or stage's block.
    `default`: the view's first block until the visitor chooses one (else the deepest); a choice
    is kept across views and models, a default is not (each view opens on its own)."""
    names = inspection.block_names
    default = default if default in names else names[-1]
    layout = sha("|".join([*names, default]).encode())[:12]       # a view with its own default: its own widgets
    chosen = st.session_state.get("chosen_block")
    chosen = chosen if chosen in names else default
    stage_numbers = list(range(1, len(inspection.stages) + 1))
    c1, c2 = st.columns(2)
    stage = c1.selectbox("Stage", stage_numbers, index=inspection.stage_of(chosen), key=f"stage_{layout}")
    in_stage = inspection.stages[stage - 1]
    name = c2.selectbox("Block", in_stage, index=in_stage.index(chosen) if chosen in in_stage else len(in_stage) - 1,
                        key=f"block_{layout}_{stage}")
    if name != chosen:                           # the visitor chose it (a default is not a choice)
        st.session_state["chosen_block"] = name
    return name


def choose_map() -> str:
    """Which map the Overview and Compare draw: the blocks' own, or Grad-CAM of the top class."""
    return st.radio("Map", list(MAPS), format_func=MAPS.get, horizontal=True, key="map_kind")
