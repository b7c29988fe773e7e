"""LIDC-IDRI with all four annotations: the paper's MoSE setting for LIDC.

The defaults in utils/config/defaults.py are this experiment, so only its identity and data are
set here: K = 4 experts, S = 4 samples each, latent dim L = 1, num_filters [32, 64, 128, 192,
192, 192, 192], 'iou' cost on probabilities, beta 1, gamma 1/2 -> 1 after 10 epochs without
improvement of the running training loss, batch 16, 200 epochs, Adam (lr 1e-3, weight decay
1e-5), ReduceLROnPlateau(factor 0.5, patience 10, min_lr 1e-5).
Lighter model of the paper: `--set num_filters=[32,64,128,192]`.
"""

experiment_name = "lidc_proposed"
log_dir_name = "lidc"
dataset = "lidc"
data_folder = "../data/lidc_npy"  # the authors' default location (docs/datasets.md)
image_size = [128, 128]  # the 2D crops (checked before training)
