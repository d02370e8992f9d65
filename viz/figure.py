"""Figures without pyplot: pyplot's global state is not thread-safe inside a server."""
import io

from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A standalone Figure (Agg-rendered when saved) with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure rendered as PNG bytes (for downloads and st.image)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
