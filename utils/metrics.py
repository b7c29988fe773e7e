"""Public import path kept stable: `utils.metrics.ged_miou`, `StreamingECE` (utils/evaluation/)."""

from utils.evaluation.metrics import StreamingECE, ged_miou, pairwise_distance
from utils.labels import hard_labels

__all__ = ["StreamingECE", "ged_miou", "hard_labels", "pairwise_distance"]
