"""One attention block of one image, without the batch index: its channel weights, its top-k
channels with exact ties, and the map to show over the image.

The map is CBAM's spatial gate (Woo et al., ECCV 2018, Eq. 3) or -- for SE (Hu et al., CVPR 2018)
and ECA (Wang et al., CVPR 2020), which have no spatial gate -- where the block's most-excited
channels fire, clearly labelled as such.
"""
from dataclasses import dataclass

import numpy as np
import torch

from blocks import ACTIVITY_CHANNELS, AttentionKind, AttentionRecord, attention_kind, strongest_channels
from viz import SpatialView

DIGITS = range(4, 10)        # decimals tried until every listed weight reads differently


@dataclass(frozen=True)
class TopChannels:
    """The k highest-weighted channels (ties go to the lower index, as `strongest_channels`), and
    how many channels share the k-th weight exactly: saturated gates often give dozens of exact
    1.0s, and then which of them make the top k is only the channel order."""
    channels: tuple[int, ...]
    weights: tuple[float, ...]
    tied: int                    # channels whose weight equals the k-th exactly
    tied_shown: int              # of those, how many are in the top k

    @classmethod
    def of(cls, weights: torch.Tensor, k: int) -> "TopChannels":
        top = strongest_channels(weights[None], k)[0]
        last = weights[top[-1]]
        return cls(tuple(top.tolist()), tuple(weights[top].tolist()), int((weights == last).sum()),
                   int((weights[top] == last).sum()))

    def decimals(self) -> int:
        """The fewest decimals (at least 4) at which the listed weights that differ read differently:
        1.0 and 0.99999988 are both "1.0000" at 4, so they are printed as 1.0000000 and 0.9999999."""
        distinct = set(self.weights)
        return next((d for d in DIGITS if len({f"{w:.{d}f}" for w in distinct}) == len(distinct)), DIGITS[-1])

    def caption(self, marked: str = "") -> str:
        """The top-k channels as text, strongest first (a chart labels only those that fit), and
        the exact tie at the k-th weight. `marked`: how a chart shows them, e.g. " (orange)"."""
        d, n = self.decimals(), len(self.channels)
        text = (f"Top {n} channel{'s' if n > 1 else ''}{marked}: "
                + " · ".join(f"#{c} {w:.{d}f}" for c, w in zip(self.channels, self.weights)))
        if self.tied > self.tied_shown:
            text += (f". {self.tied} channels share the weight {self.weights[-1]:.{d}f} exactly; "
                     + ("the lowest-numbered of them is shown." if self.tied_shown == 1 else
                        f"the lowest-numbered {self.tied_shown} of them are shown."))
        return text


def spatial_view(record: AttentionRecord, index: int = 0, top_k: int = ACTIVITY_CHANNELS) -> SpatialView:
    """The map for image `index` of a capture record. SE/ECA records need their channel maps
    (`capture_attention(..., channel_maps=K)`)."""
    if record.spatial is not None:
        return SpatialView(record.spatial[index].numpy(), f"spatial attention ({record.attention.display} gate)",
                           True, "gate value")
    values = record.activity(top_k)[index].numpy()
    k = max(1, min(top_k, record.top_maps.shape[1]))
    if k == 1:
        label, silent = "where the top-weighted channel fires", "the top-weighted channel does not fire"
    else:
        label, silent = f"where the top-{k} weighted channels fire", f"none of the top-{k} weighted channels fires"
    note = "" if values.any() else f"{silent} on this image (all zero)"
    return SpatialView(values, f"{label} (not a gate)", False, "mean activation", note,
                       all_channels=k == record.channels < top_k)


@dataclass(frozen=True)
class BlockView:
    """What one attention block did to one image."""
    name: str                      # "layer3.1"
    module: str                    # the attention module, "layer3.1.attn"
    kind: str                      # the kind's name, "se" | "eca" | "cbam": its record is `attention`
    stage: int | None
    block: int | None
    feature_size: tuple[int, int]
    weights: np.ndarray            # [C] channel weights
    top: TopChannels
    map: SpatialView
    has_spatial_gate: bool

    @classmethod
    def of(cls, record: AttentionRecord, top_k: int, index: int = 0) -> "BlockView":
        weights = record.channel[index]
        return cls(record.name, record.module, record.kind, record.stage, record.block, record.feature_size,
                   weights.numpy(), TopChannels.of(weights, top_k), spatial_view(record, index, top_k),
                   record.spatial is not None)

    @property
    def channels(self) -> int:
        return len(self.weights)

    @property
    def attention(self) -> AttentionKind:
        return attention_kind(self.kind)

    @property
    def title(self) -> str:
        """'layer1.0 (8x8), all 8 channels (all zero)': the block, its map's size, whether the map
        averages every channel and whether it is empty, for the captions of a grid of maps."""
        h, w = self.map.values.shape
        return (f"{self.name} ({h}x{w})" + (f", all {self.channels} channels" if self.map.all_channels else "")
                + (" (all zero)" if self.map.note else ""))
