"""One planned batch of a study: the function every engine runs (`lens.study`'s DataLoader loop and
`lens.study_ray`'s actors), in a module of its own so that neither engine imports the other."""
import numpy as np
import torch

import pretrained

from .study_source import SourceSpec, masks_of
from .study_stats import Partial, study_batch


def compute_batch(loaded: pretrained.LoadedModel, spec: SourceSpec, batch: dict) -> Partial:
    """One collated batch's statistics."""
    failed = {"index": np.array([i for i, _ in batch["failed"]], np.int64),
              "reason": np.array([r for _, r in batch["failed"]], str)}
    if batch["x"] is None:
        return Partial(failed=failed)
    index = batch["index"].tolist()
    with torch.inference_mode():
        partial = study_batch(loaded.model, batch["x"], batch["label"].numpy(), masks_of(batch), index,
                              [spec.image_id(i) for i in index], loaded.labels, len(spec.classes))
    return Partial(partial.arrays, partial.rows, failed)
