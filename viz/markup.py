"""User-controlled text made literal: for Streamlit's markdown (`md`) and for matplotlib (`literal`)."""
import re

MARKUP = re.compile(r"""([\\`*_{}\[\]()<>#+\-.!|~:$&"'=^%/])""")


def md(text) -> str:
    """User-controlled text (file names, class names, a file's keys in an error) made literal for
    Streamlit's markdown, which every label, caption and message goes through: each ASCII
    punctuation mark that GFM, HTML, $maths$ or :colour[] directives could read is escaped (a
    backslash before any ASCII punctuation is literal in CommonMark), and line breaks become spaces."""
    return MARKUP.sub(r"\\\1", " ".join(str(text).splitlines()))


def literal(text) -> str:
    """User-controlled text (class names, file names, a checkpoint's block names) made literal for a
    matplotlib title or label, where a pair of '$' would start maths (and a bad formula fails the
    whole figure)."""
    return str(text).replace("$", r"\$")
