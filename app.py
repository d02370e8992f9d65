"""Attention Lens: see what SE, ECA and CBAM attention blocks do inside a ResNet.

The script Streamlit runs for every page: the frame, then `views.page.main`. Everything else lives in
the `views` package, imported once per process: what a script defines is defined again on every
rerun (dataclasses, cached functions whose source Streamlit reads and hashes), ~3 ms of a page's
~25 ms of server time.
"""
import streamlit as st


def frame() -> None:
    """The page's frame, drawn before anything slow: a fresh server process still has to import
    PyTorch (seconds) before the first page can show anything else."""
    st.set_page_config(page_title="Attention Lens", page_icon=":eye:", layout="wide")
    st.title("Attention Lens")
    st.caption("What channel attention (SE, ECA) and spatial attention (CBAM) do inside a ResNet, block by block.")


frame()
with st.spinner("Starting: loading PyTorch and the models..."):
    from views.page import main  # noqa: E402  (after the frame: the first page shows at once)
main()
