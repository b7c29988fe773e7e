"""Synthetic Cityscapes, the flip probabilities: `synthetic_cityscapes.py` trained for 60 epochs.

Ten epochs teach every class; learning the probabilities of the five flips takes the longer run.
The data, the model and the recipe (and why each setting is chosen) are the base config's.
"""

_base_ = "synthetic_cityscapes.py"
experiment_name = "synthetic_cityscapes_long"
epochs = 60
