"""One planned batch of a study: the function every engine runs (`lens.study`'s DataLoader loop and
`lens.study_ray`'s actors), in a module of its own so that neither engine imports the other."""
import numpy as np
import torch

import pretrained

from .study_faithfulness import Faithfulness, faithfulness_batch
from .study_source import SourceSpec, masks_of
from .study_stats import Partial, study_batch


def compute_batch(loaded: pretrained.LoadedModel, spec: SourceSpec, batch: dict,
                  faithfulness: Faithfulness | None = None) -> Partial:
    """One collated batch's statistics; with `faithfulness`, its chosen images' deletion and
    insertion AUCs too (`lens.study_faithfulness`)."""
    failed = {"index": np.array([i for i, _ in batch["failed"]], np.int64),
              "reason": np.array([r for _, r in batch["failed"]], str)}
    if batch["x"] is None:
        return Partial(failed=failed)
    index = batch["index"].tolist()
    labels = batch["label"].numpy()
    with torch.inference_mode():
        partial = study_batch(loaded.model, batch["x"], labels, masks_of(batch), index,
                              [spec.image_id(i) for i in index], loaded.labels, len(spec.classes))
    if faithfulness is None:
        return Partial(partial.arrays, partial.rows, failed)
    arrays, rows = faithfulness_batch(loaded.model, batch["x"], labels, faithfulness.chosen(index, len(spec)),
                                      len(spec.classes), faithfulness)
    return Partial({**partial.arrays, **arrays}, {**partial.rows, **rows}, failed)
