"""The page, one file per view. `page.py` draws the frame's controls and the compact header, then
the chosen view: each view module has a `TITLE`, says whether it `NEEDS_ATTENTION`, and has
`render(subject, display)`. Adding a view is one file here and one line in `page.VIEWS`."""
