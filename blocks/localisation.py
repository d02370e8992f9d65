"""How well a spatial attention map sits on an object, given the object's mask.

Score = (share of the map's mass, upsampled to the image, that falls inside the mask) / (the
mask's share of the image): 1.0 is no better than uniform attention, higher is better, and the
most any map can reach is 1 / (mask share).
"""
import numpy as np
import torch
import torch.nn.functional as F


def upsample(attention_map, size: tuple[int, int], cells: bool = False) -> np.ndarray:
    """[h, w] map -> [H, W] by bilinear interpolation with align_corners=False: feature cell
    (i, j) covers input pixels [i*H/h, (i+1)*H/h), the grid the convolutions downsampled.
    `cells=True` repeats each cell instead (nearest), which shows the map's true resolution."""
    if isinstance(attention_map, torch.Tensor):          # any dtype (bfloat16 has no NumPy twin), any device
        attention_map = attention_map.detach().float().cpu()
    m = torch.as_tensor(np.asarray(attention_map, dtype=np.float32))
    if m.ndim == 3 and m.shape[0] == 1:                 # a record's [1, h, w] slice
        m = m[0]
    if m.ndim != 2 or 0 in m.shape:
        raise ValueError(f"an attention map must be [h, w], got shape {list(m.shape)}: "
                         "pass record.spatial[i] for image i")
    m = m[None, None]
    if cells:
        return F.interpolate(m, size=size, mode="nearest")[0, 0].numpy()
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def localisation_score(attention_map, mask) -> float:
    """Mass of the upsampled map inside `mask` ([H, W] bool) relative to uniform attention;
    NaN for a map with no mass at all (it points nowhere)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the mask is empty: there is no object to score against")
    values = upsample(attention_map, mask.shape)
    total = values.sum()
    return float(values[mask].sum() / total / mask.mean()) if total > 0 else float("nan")
