"""LIDC-IDRI trained with a single annotation per image (validation and test use all four).

Same as lidc_proposed.py (the defaults) except for the annotations and the KL weight.
"""

experiment_name = "lidc_proposed_1annot"
log_dir_name = "lidc"
dataset = "lidc"
data_folder = "../data/lidc_npy"
label_range = [0]  # train on the first annotation only
beta = 10.0  # the paper's KL weight for one annotation: the weights get no multi-annotation signal
