"""Text a visitor controls or that quotes a file, as the page shows it: bounded, without the
server's folders, escaped for markdown."""
from pathlib import Path

import pretrained
from viz.markup import md

ROOT = Path(__file__).parent.parent
SHOWN_CHARS = 600            # longer messages from the library or a file are cut in the middle
NAME_CHARS = 120             # and so are longer file names


def bounded(text: str, limit: int) -> str:
    """`text` cut in the middle to `limit` characters and a note of how many were cut: a file's name or
    a message quoting its contents can run to megabytes, every one of them sent to the browser."""
    if len(text) <= limit:
        return text
    head, cut = limit * 2 // 3, len(text) - limit
    return f"{text[:head]} ... ({cut:,} characters cut) ... {text[head + cut:]}"


def unlocated(text: str) -> str:
    """`text` with the server's folders named rather than spelled out: visitors cannot use them (the
    server's log and the README tell the operator)."""
    folders = {pretrained.weights_home(): "the server's weights folder", ROOT: "the app's folder",
               Path.home(): "a server folder"}
    for folder, name in folders.items():
        if folder.parent != folder:                     # never the root folder: "/" is in every path
            text = text.replace(str(folder), name)
    return text


def shown(message) -> str:
    """A message from the library or about a file as a visitor reads it: no server folders, bounded, escaped."""
    return md(bounded(unlocated(str(message)), SHOWN_CHARS))


def file_name(upload) -> str:
    """An upload's name as the page and the library use it: bounded (the visitor chose it)."""
    return bounded(upload.name, NAME_CHARS)


def capitalised(text: str) -> str:
    """A map's label as a heading: "where the top-5 ..." -> "Where the top-5 ..."."""
    return text[:1].upper() + text[1:]
