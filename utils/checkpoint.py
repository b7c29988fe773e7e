"""Public import path kept stable: `utils.checkpoint.load_model_weights` (see utils/runtime/)."""

from utils.runtime.checkpoint import load_model_weights, save_checkpoint

__all__ = ["load_model_weights", "save_checkpoint"]
