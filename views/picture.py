"""The image the page shows: an upload, a bundled sample or a camera shot, chosen on the page itself
(not in the sidebar, which a phone hides behind its toggle and keeps open over the results)."""
import json
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from viz.markup import md

from .messages import file_name
from .session import sha, upload_digest

ASSETS = Path(__file__).parent.parent / "assets"
SAMPLES = json.loads((ASSETS / "samples.json").read_text())
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
IMAGE_SOURCES = ["Upload", "Sample", "Camera"]


@dataclass(frozen=True)
class Picture:
    data: bytes
    name: str
    digest: str
    sample: dict | None = None        # a bundled sample: its title, file, mask and label

    @property
    def mask(self) -> Path | None:
        """A sample's object mask, where it has one."""
        mask = self.sample.get("mask") if self.sample else None
        return mask and ASSETS / mask


def sample_picture(sample: dict) -> Picture:
    data = (ASSETS / sample["file"]).read_bytes()
    return Picture(data, sample["file"], sha(data), sample)


def show_source(source: str) -> None:
    st.session_state["image_source"] = source


def choose_picture() -> Picture:
    """The uploader is always on the page (nothing dropped when a sample is shown); choosing a
    file, a sample or a camera shot shows it."""
    st.session_state.setdefault("image_source", "Sample")          # the default page needs no action
    titles = [s["title"] for s in SAMPLES]
    now = st.session_state.get("sample", titles[0]) if st.session_state["image_source"] == "Sample" else None
    label = f"Image: {md(now)}" if now else "Image: your own"
    with st.expander(f"{label} -- upload yours, pick a sample or take a photo here"):
        upload = st.file_uploader("Drop an image (JPEG, PNG, WebP, BMP, GIF, TIFF)", type=UPLOAD_TYPES, key="image",
                                  on_change=show_source, args=("Upload",))
        left, right = st.columns(2)
        source = left.radio("Show", IMAGE_SOURCES, key="image_source", horizontal=True)
        sample = SAMPLES[titles.index(right.selectbox("Sample", titles, key="sample", on_change=show_source,
                                                      args=("Sample",)))]
        if source == "Camera":
            shot = st.camera_input("Take a picture", key="camera")
            if shot is not None:
                return Picture(shot.getvalue(), "camera.jpg", upload_digest(shot))
            st.caption("No picture taken yet: showing the sample.")
        if source == "Upload":
            if upload is not None:
                return Picture(upload.getvalue(), file_name(upload), upload_digest(upload))
            st.caption("No file uploaded yet: showing the sample.")
    return sample_picture(sample)
