"""The compact header above every view: the image as the model sees it, the top class, one line on
the model, and what is wrong when something is (input notes, an untrained-looking model, a photo
shown to a shapes model). Short, so that the first map sits above the fold at 1280 x 720."""
import streamlit as st

from lens.card_notes import model_note
from lens.domain_note import photo_note
from lens.sanity import model_hint
from viz.markup import md

from .messages import shown
from .subject import Subject
from .widgets import png, show_predictions

THUMBNAIL = 96               # pixels: the header's image


def render(subject: Subject) -> None:
    inspection, model, picture = subject.inspection, subject.model, subject.picture
    if inspection.output_note:
        st.error(inspection.output_note)
    left, right = st.columns([1, 9])
    left.image(png(inspection.image), width=THUMBNAIL)
    top = inspection.predictions(1)[0]
    with right:
        st.markdown(f"**{md(top.label)}** {top.probability:.1%} · {md(picture.name)}, as the model sees it "
                    f"({inspection.image.width} x {inspection.image.height} after resize and crop) · {md(model.name)}")
        st.caption(shown(model.description))              # it may quote a file's name or path
        with st.expander("Top 5 predictions and the model card"):
            show_predictions(inspection, notes=False)      # said above the maps
            if model.source == "bundled" and (note := model_note(model.name)):
                st.caption(note)
    for note in inspection.input_notes:
        st.warning(note)
    if hint := model_hint(inspection):
        st.warning(hint)
    shapes_sample = picture.sample and picture.sample.get("label") in model.labels
    if not shapes_sample and (note := photo_note(model)):
        st.warning(note)
