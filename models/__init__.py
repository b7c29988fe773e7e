"""Models returning a weighted set of segmentations: MoSE and the two baselines."""

from models.mose import MoSE
from models.prob_unet import ProbUnet
from models.ssn import SSN

__all__ = ["MoSE", "ProbUnet", "SSN"]
