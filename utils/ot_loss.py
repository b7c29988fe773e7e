"""Public import path kept stable: `utils.ot_loss.OTLoss` (see utils/loss/)."""

from utils.loss.ot_loss import OTLoss

__all__ = ["OTLoss"]
