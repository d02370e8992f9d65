"""A faithfulness `Panel` (`lens.faithfulness.block_panel`) as strict JSON and as figures: what
`lens report --faithfulness` writes and what the app's Block view can draw."""
from matplotlib.figure import Figure

from viz.faithfulness import CurvePanel, faithfulness_figure, faithfulness_grid_figure

from .export import _number
from .faithfulness import BAND, Panel

RANDOM_STATS = ("mean", "low", "high")      # the random maps' mean, then their 5-95% band's ends


def panel_curves(panel: Panel, reversed_map: bool = False) -> CurvePanel:
    """The panel as `viz.faithfulness` draws it: the block's map, its Grad-CAM and the centred
    Gaussian (and the block's map reversed, with `reversed_map`) over the random maps' band."""
    drawn = [i for i, score in enumerate(panel.scores) if reversed_map or not score.label.endswith(", reversed")]
    randoms = slice(len(panel.scores), None)
    return CurvePanel(panel.block, panel.curves.fractions.numpy(),
                      {panel.scores[i].label: panel.curves.deletion[i].numpy() for i in drawn},
                      {panel.scores[i].label: panel.curves.insertion[i].numpy() for i in drawn},
                      panel.curves.deletion[randoms].numpy(), panel.curves.insertion[randoms].numpy(), BAND)


def panel_figure(panel: Panel, reversed_map: bool = False) -> Figure:
    """One block's deletion and insertion curves, side by side."""
    return faithfulness_figure(panel_curves(panel, reversed_map))


def panels_figure(panels: list[Panel], title: str = "") -> Figure:
    """Every block's curves on one image, two blocks a row."""
    return faithfulness_grid_figure([panel_curves(p) for p in panels], title)


def panel_json(panel: Panel) -> dict:
    """The panel as JSON types (NaN from a diverged model as null): the class scored, the fill and
    the share of pixels at each step; per map (the block's map, the map reversed, Grad-CAM, the
    centred Gaussian) its curves, AUCs and verdicts against the random band; the random maps' AUCs
    (mean and 5-95% band) and their curves' pointwise mean and band; the panel's sentence."""
    drawn = panel_curves(panel)
    curves = panel.curves
    maps = [{"map": score.label, "deletion": _numbers(curves.deletion[i]), "insertion": _numbers(curves.insertion[i]),
             "deletion_auc": _number(score.deletion_auc), "insertion_auc": _number(score.insertion_auc),
             "deletion_verdict": score.deletion_verdict, "insertion_verdict": score.insertion_verdict}
            for i, score in enumerate(panel.scores)]
    random = {"maps": len(curves.target) - len(panel.scores), "band": list(BAND),
              "deletion_auc": dict(zip(RANDOM_STATS, map(_number, panel.random_deletion))),
              "insertion_auc": dict(zip(RANDOM_STATS, map(_number, panel.random_insertion))),
              **{curve: dict(zip(RANDOM_STATS, map(_numbers, drawn.random_curves(curve))))
                 for curve in ("deletion", "insertion")}}
    return {"class": panel.target, "label": panel.target_label, "fill": panel.fill, "steps": len(curves.fractions) - 1,
            "fractions": _numbers(curves.fractions), "maps": maps, "random": random,
            "sentence": panel.sentence(panel.scores[0])}


def _numbers(values) -> list[float | None]:
    return [_number(float(v)) for v in values.tolist()]
