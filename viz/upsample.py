"""A feature map onto the image it came from: the alignment every overlay (and every score of a
map against an object mask) relies on."""
import numpy as np
import torch
import torch.nn.functional as F


def upsample(attention_map, size: tuple[int, int], cells: bool = False) -> np.ndarray:
    """[h, w] map -> [H, W] by bilinear interpolation with align_corners=False: feature cell
    (i, j) covers input pixels [i*H/h, (i+1)*H/h), the grid the convolutions downsampled.
    `cells=True` repeats each cell instead (nearest), which shows the map's true resolution."""
    m = torch.from_numpy(as_map(attention_map))[None, None]
    if cells:
        return F.interpolate(m, size=size, mode="nearest")[0, 0].numpy()
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def as_map(attention_map) -> np.ndarray:
    """An [h, w] float32 array from a map given as an array or a tensor of any dtype and device."""
    if isinstance(attention_map, torch.Tensor):          # any dtype (bfloat16 has no NumPy twin), any device
        attention_map = attention_map.detach().float().cpu()
    m = np.asarray(attention_map, dtype=np.float32)
    if m.ndim == 3 and m.shape[0] == 1:                 # a record's [1, h, w] slice
        m = m[0]
    if m.ndim != 2 or 0 in m.shape:
        raise ValueError(f"an attention map must be [h, w], got shape {list(m.shape)}: "
                         "pass record.spatial[i] for image i")
    return m
