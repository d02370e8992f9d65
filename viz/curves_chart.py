"""Deletion or insertion curves (Petsiuk et al., "RISE", BMVC 2018) as a Vega-Lite spec: one line
per map, the random maps' band shaded behind them. Plain dicts in, a plain dict out."""

BAND_COLOUR = "#bbbbbb"


def curves_chart(lines: list[dict], band: list[dict], curve: str, height: int = 360) -> dict:
    """The `curve` ("deletion" or "insertion") rows of `lines` (map, curve, fraction, probability)
    over the `band` rows (curve, fraction, low, high). `height`: the whole chart's, its legend (one
    map a line, under the plot) included, as the app fits it."""
    x = {"field": "fraction", "type": "quantitative", "scale": {"domain": [0, 1]},
         "title": "share of pixels removed" if curve == "deletion" else "share of pixels restored",
         "axis": {"format": "%"}}
    y_scale = {"domain": [0, 1]}
    shaded = {"data": {"name": "band"}, "mark": {"type": "area", "color": BAND_COLOUR, "opacity": 0.5},
              "encoding": {"x": x, "y": {"field": "low", "type": "quantitative", "scale": y_scale},
                           "y2": {"field": "high"},
                           "tooltip": [{"field": "low", "format": ".3f"}, {"field": "high", "format": ".3f"}]}}
    drawn = {"data": {"name": "lines"}, "mark": {"type": "line", "point": False},
             "encoding": {"x": x, "y": {"field": "probability", "type": "quantitative", "scale": y_scale,
                                        "title": "probability of the class"},
                          "color": {"field": "map", "type": "nominal",
                                    "legend": {"orient": "bottom", "direction": "vertical", "title": None,
                                               "labelLimit": 400}},
                          "tooltip": [{"field": "map"}, {"field": "fraction", "format": ".0%"},
                                      {"field": "probability", "format": ".3f"}]}}
    return {"height": height, "title": f"{curve.capitalize()} (grey: random maps, 5-95%)",
            "datasets": {"lines": [r for r in lines if r["curve"] == curve],
                         "band": [r for r in band if r["curve"] == curve]},
            "layer": [shaded, drawn]}
