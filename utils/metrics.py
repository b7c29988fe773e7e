"""Public import path kept stable: `utils.metrics.ged_miou`, `StreamingECE` (utils/evaluation/)."""

from utils.evaluation.metrics import StreamingECE, ged_miou, hard_labels, pairwise_distance

__all__ = ["StreamingECE", "ged_miou", "hard_labels", "pairwise_distance"]
