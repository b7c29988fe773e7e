"""LIDC-IDRI trained with a single annotation per image (validation and test use all four).

The paper's MoSE setting for LIDC (`lidc_proposed.py`) except for the annotations and the KL
weight.
"""

_base_ = "lidc_proposed.py"
experiment_name = "lidc_proposed_1annot"
label_range = [0]  # train on the first annotation only
beta = 10.0  # the paper's KL weight for one annotation: the weights get no multi-annotation signal
