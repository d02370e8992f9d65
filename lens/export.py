"""An inspection as plain data: strict JSON (NaN from a diverged model becomes null) and CSV."""
import csv
import io
import math


def _number(v: float) -> float | None:
    return round(v, 6) if math.isfinite(v) else None


def _rounded(rows) -> list[list[float | None]]:
    return [[_number(v) for v in row] for row in rows.tolist()]


def attention_json(inspection, top_k: int, cams: dict | None = None) -> dict:
    """Everything an inspection holds, as JSON types. Per block: its channel weights, its `top_k`
    strongest channels (`top_channels`), its spatial gate, and for SE/ECA where those channels fire
    (`channel_activity`; None for CBAM, whose map is `spatial`). With `cams` (block -> Grad-CAM
    view, `Inspection.grad_cams`): each block's Grad-CAM map and its rank agreement with the
    block's own map (`grad_cam`, `grad_cam_agreement`)."""
    blocks = []
    for view in inspection.views(top_k):
        cam = {} if cams is None else {"grad_cam": _rounded(cams[view.name].values), "grad_cam_agreement": _number(
            inspection.cam_agreement(view.name, cams[view.name], top_k))}
        blocks.append({
            "name": view.name, "module": view.module, "kind": view.kind, "stage": view.stage, "block": view.block,
            "channels": view.channels, "feature_size": list(view.feature_size),
            "channel_weights": [_number(w) for w in view.weights.tolist()],
            "spatial": _rounded(view.map.values) if view.has_spatial_gate else None,
            "top_channels": list(view.top.channels),
            "channel_activity": None if view.has_spatial_gate else _rounded(view.map.values), **cam})
    return {
        "image": inspection.image_name, "model": inspection.model.name,
        "input_size": list(inspection.capture.input_size),
        "predictions": [{"class": p.index, "label": p.label, "probability": _number(p.probability)}
                        for p in inspection.predictions(5)],
        "blocks": blocks,
        **({} if cams is None else {"grad_cam_of": next(iter(cams.values())).label}),
    }


def weights_csv(inspection) -> str:
    """One row per (block, channel): block, kind, channel, weight."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["block", "kind", "channel", "weight"])
    for view in inspection.views():
        writer.writerows((view.name, view.kind, c, f"{w:.6f}") for c, w in enumerate(view.weights.tolist()))
    return out.getvalue()
