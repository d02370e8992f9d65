"""The app's Study view: what every attention block does over a whole dataset, class by class
(`lens.study`), from a study folder on the server or a small study run live on fresh shapes.

UI only, like every view: every number and figure comes from `lens.study_results.StudyResults`.
Visitors never see the server's folders or commands: those go to the server log.
"""
import logging
import os
import tempfile
import threading
from pathlib import Path

import streamlit as st

from lens.study import StudyModel, run_study
from lens.study_faithfulness import CURVES, EXPLAINED, MAPS, RANDOM, READING
from lens.study_results import FILES, StudyResults, saved_studies
from viz import figure_png
from lens.glossary import GLOSSARY
from viz.markup import md

from .models import model_entries

TITLE = "Study"
UNDEFINED = "undefined"
NEEDS_ATTENTION = False
STUDIES_ROOT = Path(os.environ.get("ATTENTION_LENS_STUDIES", Path(__file__).parent.parent / "studies"))
LIVE_SIZES = {20: "20 per class (200 images)", 50: "50 per class (500 images)", 100: "100 per class (1,000 images)"}
LIVE_SEED = 4242            # fresh images: training used seeds 0 and 1, the model card 2026
SOURCES = ["Run a small study here", "Open a saved study"]
MIME = {".json": "application/json", ".parquet": "application/vnd.apache.parquet"}
log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def live_root() -> Path:
    """Where this server process keeps its live studies."""
    return Path(tempfile.mkdtemp(prefix="attention-lens-studies-"))


@st.cache_resource(show_spinner=False, max_entries=len(LIVE_SIZES) * 8)
def live_lock(folder: str) -> threading.Lock:
    return threading.Lock()


def live_study(model_name: str, version: int, per_class: int, progress) -> StudyResults:
    """A study of a bundled model on fresh shapes of the version it was trained on, run once per
    server process and shared by every session: a second visitor asking while it runs waits for
    it (one lock per study), later ones open the finished folder. Only fixed choices reach here,
    so the folders and caches stay few."""
    folder = live_root() / f"{model_name}-v{version}-{per_class}"
    with live_lock(str(folder)):
        if not (folder / "study.json").is_file():
            run_study(f"shapes:v{version}:{LIVE_SEED}:{10 * per_class}", StudyModel(model_name), folder,
                      batch_size=50, shard_size=500, workers=0, progress=progress)
    return saved_study(str(folder), (folder / "study.json").stat().st_mtime, str(live_root()))


@st.cache_resource(show_spinner=False, max_entries=16)
def saved_study(folder: str, changed: float, root: str) -> StudyResults:
    return StudyResults.open(folder, root)


def study_name(folder: Path) -> str:
    """A saved study as visitors see it: its place in STUDIES_ROOT (model/ for a study of several)."""
    return folder.relative_to(STUDIES_ROOT).as_posix()


def choose_study(entries: dict) -> StudyResults | None:
    source = st.radio("Study", SOURCES, horizontal=True, key="study_source")
    if source == SOURCES[1]:
        folders = saved_studies(STUDIES_ROOT)       # set ATTENTION_LENS_STUDIES to point elsewhere
        if not folders:
            log.warning("Study view: no finished study in %s; write one there with `python -m lens study "
                        "shapes:v2:7:2000 --out %s`, or set ATTENTION_LENS_STUDIES to the folder that holds yours",
                        STUDIES_ROOT, STUDIES_ROOT / "my-study")
            st.info("No saved study is available on this server. A saved study shows what a study run here shows "
                    "(class specificity over depth, each class's mean excitations and maps) over a larger dataset; "
                    "choose \"Run a small study here\" to study fresh shapes now.")
            return None
        folder = st.selectbox("Saved study", folders, format_func=study_name, key="study_folder")
        try:
            return saved_study(str(folder), (folder / "study.json").stat().st_mtime, str(STUDIES_ROOT))
        except (ValueError, OSError) as e:
            log.warning("Study view: cannot open %s: %s", folder, e)
            st.error(f"The saved study {md(study_name(folder))} cannot be opened: its files are incomplete or "
                     "damaged. Choose another one, or run a small study here.")
            return None
    bundled = [name for name, e in entries.items() if e.source == "bundled" and e.attention]
    c1, c2 = st.columns(2)
    model = c1.selectbox("Model", bundled, key="study_model")
    per_class = c2.selectbox("Fresh shapes images", list(LIVE_SIZES), index=1, format_func=LIVE_SIZES.get,
                             key="study_size")
    asked = st.session_state.setdefault("studies_asked", set())      # (model, size): at most one per choice
    if st.button("Run the study", key="study_run", help="Computed once per server and shared by every visitor"):
        asked.add((model, per_class))
    if (model, per_class) not in asked:
        st.caption("A study runs every image through the model once and keeps, per class and block, the mean and "
                   "variance of every channel weight and the mean map; on two cores 500 images take about a minute.")
        return None
    bar = st.progress(0.0, text="Studying fresh shapes images...")
    results = live_study(model, entries[model].shapes_version, per_class, lambda done, total: bar.progress(done / total,
                                                                             text=f"{done} of {total} images"))
    bar.empty()
    return results


def show_study(results: StudyResults) -> None:
    summary = results.summary
    c1, c2, c3 = st.columns(3)
    c1.metric("Images", f"{summary['images']:,}")
    if "accuracy" in summary:
        c2.metric("Accuracy", f"{summary['accuracy']:.1%}")
    c3.metric("Unreadable files", len(summary["failed"]))
    st.markdown("**Class specificity over depth.** The SE paper (Hu et al., CVPR 2018, Sec. 7.2, Fig. 6) found "
                "early blocks excite the same channels for every class and late blocks class-specific ones: the "
                "inter-class correlation of the classes' mean excitations falls with depth, the share of variance "
                "the class explains (eta²) rises. A block whose gates are saturated looks class-agnostic only "
                "because its weights do not move: read it beside the saturated share.")
    table = results.block_table()
    st.line_chart(table.set_index("block")[["inter-class r", "eta²"]], height=260)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.3f", help=GLOSSARY.get(c)) for c in (
            "inter-class r", "eta²", "saturated share", "AUC", "AUC, centred Gaussian") if c in table} | {
        "static": st.column_config.NumberColumn(help=GLOSSARY["static"])})
    st.caption("dead: channels at or below 0.01 on every image; saturated: at or above 0.99 on every image; "
               "static: varying by less than 0.01 (standard deviation) over the images.")
    block = st.selectbox("Block", results.blocks, index=len(results.blocks) - 1, key="study_block")
    name = md(block)                               # read from study.json: literal, whatever it holds
    classes = st.multiselect("Classes", results.classes, default=results.classes[:4], key="study_classes")
    st.markdown(f"**Mean excitation of each channel of {name}, per class** ({results.class_dependence(block)})")
    st.line_chart(results.excitations(block, classes or None), height=300, x_label="channel",
                  y_label="mean weight")
    st.markdown(f"**Mean map of {name}, per class**")
    st.image(figure_png(results.maps_figure(block)), width="stretch")
    if results.has_localisation:
        st.markdown(f"**Does {name}'s map sit on the object?** Over every image with a mask, beside two maps "
                    "that know nothing of the image: a map that does not beat the centred Gaussian has not shown "
                    "that it finds the object.")
        st.dataframe(results.localisation_table(block).style.format("{:.3f}", na_rep=UNDEFINED), width="stretch")
        st.caption(f"{UNDEFINED}: the pointing game of the uniform map, which has no highest point.")
        st.markdown(f"Per class: a class whose AUC sits at or below the centred Gaussian's is one where "
                    f"{name} attends off the object.")
        st.dataframe(results.localisation_by_class(block).style.format("{:.3f}", na_rep=UNDEFINED), width="stretch")
    if results.has_faithfulness:
        show_faithfulness(results, block)
    st.markdown("**Downloads**")
    columns = st.columns(len(FILES))
    for column, name in zip(columns, FILES):
        path = results.folder / name
        column.download_button(name, path.read_bytes, file_name=name, mime=MIME[path.suffix], on_click="ignore",
                               key=f"study_download_{name}")


def show_faithfulness(results: StudyResults, block: str) -> None:
    """Deletion and insertion per block over the study's scored images (`lens.study_faithfulness`)."""
    settings = results.faithfulness_settings
    st.markdown(f"**Does the model use what each block's map marks?** {md(results.summary.get('model_name', ''))} "
                f"on {settings['scored']:,} images spread over the source, {md(settings['fill'])} fill, "
                f"{settings['steps']} steps, {settings['randoms']} random maps per image.")
    st.caption(EXPLAINED)
    shares = {f"{m} better than chance": st.column_config.NumberColumn(format="percent") for m in MAPS[:2]}
    for curve in CURVES:
        st.markdown(f"Mean {curve} AUC per block ({READING[curve]})")
        table = results.faithfulness_table(curve)
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            **{c: st.column_config.NumberColumn(format="%.3f") for c in (*MAPS, *RANDOM)}, **shares})
    st.image(figure_png(results.faithfulness_figure()), width="stretch")
    st.markdown(f"Per class at {md(block)}: mean deletion AUC ({READING['deletion']})")
    st.dataframe(results.faithfulness_by_class(block), width="stretch", column_config={
        **{c: st.column_config.NumberColumn(format="%.3f") for c in (*MAPS, *RANDOM)}, **shares})


def render(subject, display) -> None:
    """The Study view does not depend on the page's image or display settings: it studies a dataset."""
    results = choose_study(model_entries())
    if results is not None:
        show_study(results)

