"""User-controlled text made safe for Streamlit's markdown."""
import re

MARKUP = re.compile(r"""([\\`*_{}\[\]()<>#+\-.!|~:$&"'=^%/])""")


def md(text) -> str:
    """User-controlled text (file names, class names, a file's keys in an error) made literal for
    Streamlit's markdown, which every label, caption and message goes through: each ASCII
    punctuation mark that GFM, HTML, $maths$ or :colour[] directives could read is escaped (a
    backslash before any ASCII punctuation is literal in CommonMark), and line breaks become spaces."""
    return MARKUP.sub(r"\\\1", " ".join(str(text).splitlines()))
