"""MoSE model components."""

from models.mose import MoSE

__all__ = ["MoSE"]
