"""A finished study read back from its folder (`python -m lens study ... --out DIR`), as the
tables the app's Study view and a notebook want: one row per block, the classes' excitation
curves of a block, the classes' mean maps, localisation beside the baselines. `saved_studies(root)`
lists the finished studies in a folder of them without following links out of it."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from blocks import attention_kind
from viz import DEFAULT_CMAP

from viz.study import class_maps_figure

from .localisation import MEASURES
from .study_faithfulness import CURVES, MAPS, RANDOM, faithfulness_figure

CLASS_AGNOSTIC, CLASS_SPECIFIC = 0.1, 0.5     # eta² below: the gate hardly depends on the class; at or above: mostly
FILES = ("study.json", "images.parquet", "channels.parquet", "maps.parquet")


def within(path: Path, root: Path) -> bool:
    """Whether `path`, its links followed, lies inside `root`."""
    return path.resolve().is_relative_to(root.resolve())


def saved_studies(root: str | Path) -> list[Path]:
    """The finished studies in `root`'s folders and in theirs (`--model A B --out DIR` writes one
    folder per model in DIR), by path: folders holding every file of FILES, none of them (nor a
    folder on the way) a link that leads out of `root`."""
    root = Path(root)
    if not root.is_dir():
        return []
    inside = [folder for folder in root.iterdir() if folder.is_dir() and within(folder, root)]
    inside += [folder for parent in list(inside) for folder in parent.iterdir() if folder.is_dir()
               and within(folder, root)]
    return sorted(folder for folder in inside
                  if all((folder / name).is_file() and within(folder / name, root) for name in FILES))


@dataclass(frozen=True, eq=False)
class StudyResults:
    folder: Path
    summary: dict
    channels: pd.DataFrame
    maps: pd.DataFrame

    @classmethod
    def open(cls, folder: str | Path, root: str | Path | None = None) -> "StudyResults":
        """The study in `folder`; with `root`, a folder or file that leads out of `root` is refused."""
        folder = Path(folder)
        if root is not None and not all(within(path, Path(root)) for path in (folder, *(folder / n for n in FILES))):
            raise ValueError(f"{folder} leads out of {root}: only studies inside it are opened")
        missing = [name for name in FILES if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"{folder} is not a finished study: {', '.join(missing)} missing "
                             "(python -m lens study SOURCE --out DIR writes them)")
        return cls(folder, json.loads((folder / "study.json").read_text()),
                   pd.read_parquet(folder / "channels.parquet"), pd.read_parquet(folder / "maps.parquet"))

    @property
    def blocks(self) -> list[str]:
        return [entry["block"] for entry in self.summary["blocks"]]

    @property
    def classes(self) -> list[str]:
        return list(self.summary["classes"])

    @property
    def has_localisation(self) -> bool:
        return "baselines" in self.summary

    def block_table(self) -> pd.DataFrame:
        """One row per block, in forward order: class specificity, channel health and (with masks)
        the block map's AUC beside the centred-Gaussian baseline's."""
        rows = []
        for e in self.summary["blocks"]:
            row = {"block": e["block"], "kind": attention_kind(e["kind"]).display, "channels": e["channels"],
                   "inter-class r": e["inter_class_correlation"], "eta²": e["eta_squared"],
                   "saturated share": e["saturated_share"], "dead": e["dead_channels"],
                   "saturated": e["saturated_channels"], "static": e["static_channels"]}
            if "localisation" in e:
                row["AUC"] = e["localisation"]["AUC"]["mean"]
                row["AUC, centred Gaussian"] = self.summary["baselines"]["centred Gaussian"]["AUC"]["mean"]
            rows.append(row)
        return pd.DataFrame(rows)

    def class_dependence(self, block: str) -> str:
        """How far `block`'s channel weights depend on the class, in words read from its numbers: the
        share of their variance the class explains (eta²) and the classes' mean excitations' correlation."""
        e = self.summary["blocks"][self.blocks.index(self._check(block))]
        eta, r = e["eta_squared"], e["inter_class_correlation"]
        if eta is None or r is None:
            return "too few images per class to say how far the gate depends on the class"
        numbers = f"eta² {eta:.2f}, inter-class r {r:.2f}"
        if eta < CLASS_AGNOSTIC:
            return f"the lines lie nearly on top of each other ({numbers}): the gate hardly depends on the class"
        if eta >= CLASS_SPECIFIC:
            return f"the lines differ ({numbers}): the class explains most of how the gate varies"
        return f"the lines differ in places ({numbers}): the class explains part of how the gate varies"

    def excitations(self, block: str, classes: list[str] | None = None) -> pd.DataFrame:
        """The classes' mean weight of each channel of `block`: index channel, one column per class."""
        self._check(block)
        rows = self.channels[self.channels["block"] == block]
        table = rows.pivot(index="channel", columns="class_name", values="mean")
        return table[[c for c in (classes or self.classes) if c in table.columns]]

    def class_map(self, block: str, class_name: str) -> np.ndarray:
        """`class_name`'s mean spatial map of `block` [h, w] (at the block's resolution)."""
        self._check(block)
        row = self.maps[(self.maps["block"] == block) & (self.maps["class_name"] == class_name)]
        if row.empty:
            raise ValueError(f"no class named {class_name!r}; classes: {', '.join(self.classes)}")
        row = row.iloc[0]
        return np.asarray(row["mean_map"], dtype=np.float64).reshape(row["height"], row["width"])

    def maps_figure(self, block: str, cmap: str = DEFAULT_CMAP) -> Figure:
        kind = self.summary["blocks"][self.blocks.index(self._check(block))]["kind"]
        return class_maps_figure(np.stack([self.class_map(block, c) for c in self.classes]), self.classes, block,
                                 self.summary["input_size"], cmap=cmap, fixed=attention_kind(kind).has_spatial_gate)

    def localisation_table(self, block: str) -> pd.DataFrame:
        """Per measure (rows): the block's map and the two baselines (columns), over all images."""
        entry = self.summary["blocks"][self.blocks.index(self._check(block))]
        if "localisation" not in entry:
            raise ValueError("this study's images have no object masks, so it has no localisation scores")
        columns = {f"{block} map": entry["localisation"], **{f"{b} (baseline)": scores for b, scores
                                                             in self.summary["baselines"].items()}}
        return pd.DataFrame({name: [scores[m]["mean"] for m in MEASURES] for name, scores in columns.items()},
                            index=list(MEASURES), dtype=float)            # undefined (None in JSON): NaN

    def localisation_by_class(self, block: str) -> pd.DataFrame:
        """Per class (rows): the block map's score on each measure beside the centred Gaussian's
        AUC on the same images, so a class whose attention sits off the object stands out."""
        entry = self.summary["blocks"][self.blocks.index(self._check(block))]
        if "localisation" not in entry:
            raise ValueError("this study's images have no object masks, so it has no localisation scores")
        table = pd.DataFrame({m: entry["localisation"][m]["per_class"] for m in MEASURES}, dtype=float)
        table["AUC, centred Gaussian"] = pd.Series(
            self.summary["baselines"]["centred Gaussian"]["AUC"]["per_class"], dtype=float)
        return table.loc[self.classes]

    @property
    def has_faithfulness(self) -> bool:
        return "faithfulness" in self.summary

    @property
    def faithfulness_settings(self) -> dict:
        """How the study scored faithfulness: images asked for and scored, fill, steps, random maps."""
        return self._faithfulness()

    def faithfulness_table(self, curve: str = "deletion") -> pd.DataFrame:
        """One row per block: each map's mean `curve` ("deletion" or "insertion") AUC over the scored
        images beside the random maps' mean and band, and the share of images on which the block's
        map and Grad-CAM beat the band."""
        self._faithfulness(curve)
        rows = [{"block": e["block"], "kind": attention_kind(e["kind"]).display, **_faithfulness_row(e["faithfulness"], curve)}
                for e in self.summary["blocks"] if "faithfulness" in e]
        return pd.DataFrame(rows).astype({c: float for c in FAITHFULNESS_COLUMNS[1:]})

    def faithfulness_by_class(self, block: str, curve: str = "deletion") -> pd.DataFrame:
        """Per class (rows) the same columns as `faithfulness_table` for `block`, over its scored images."""
        self._faithfulness(curve)
        entry = self.summary["blocks"][self.blocks.index(self._check(block))]["faithfulness"]
        return pd.DataFrame({c: _faithfulness_row(scores, curve) for c, scores in entry["per_class"].items()},
                            dtype=float).T.loc[self.classes].astype({"images": int})

    def faithfulness_figure(self) -> Figure:
        self._faithfulness()
        return faithfulness_figure(self.summary)

    def _faithfulness(self, curve: str = "deletion") -> dict:
        if not self.has_faithfulness:
            raise ValueError("this study has no faithfulness scores (python -m lens study ... --faithfulness N)")
        if curve not in CURVES:
            raise ValueError(f"curve must be one of {', '.join(CURVES)}, got {curve!r}")
        return self.summary["faithfulness"]

    def _check(self, block: str) -> str:
        if block not in self.blocks:
            raise ValueError(f"no block named {block!r}; blocks: {', '.join(self.blocks)}")
        return block


FAITHFULNESS_COLUMNS = ("images", *MAPS, *RANDOM, "block map better than chance", "Grad-CAM better than chance")


def _faithfulness_row(scores: dict, curve: str) -> dict:
    """One block's (or class's) faithfulness for `curve` as a table row (None: NaN)."""
    better = scores["better_than_chance"]
    return {"images": scores["images"], **{m: scores[f"{curve}_auc"][m] for m in (*MAPS, *RANDOM)},
            **{f"{m} better than chance": better[m][curve] for m in MAPS[:2]}}
