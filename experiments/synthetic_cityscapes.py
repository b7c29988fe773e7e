"""Synthetic Cityscapes-like scenes (25 ids, 32 flip modes, noisy black-box prediction) on a CPU.

A scaled-down version of cityscapes_proposed.py: same loss, masking, grouping and schedulers,
a small U-Net and few epochs. The data is generated into synthetic_data/cityscapes.
"""

experiment_name = "synthetic_cityscapes"
log_dir_name = "synthetic"
dataset = "cityscapes"
data_folder = "synthetic_data/cityscapes"
synthetic = "cityscapes"
synthetic_options = dict(n_train=600, n_val=60, n_test=60, seed=0)
n_classes = 25
eval_class_ids = [2, 12, 14, 9, 1, 20, 21, 22, 23, 24]
image_size = [64, 64]
num_filters = [8, 16, 32, 32]
num_expert = 35
latent_dim = 5
sample_per_mode = 1
masked_pred = True
softmax = False
cost_fn = "ce"
gamma0 = 1 / 32
num_chunks = 4
train_batch_size = 12
val_batch_size = 12
test_batch_size = 6
epochs = 6
gamma_scheduler_options = dict(values=[1.0], patience=2)
S_scheduler_options = dict(values=[2], patience=2)
G_scheduler_options = dict(values=[0.95, 0.925, 0.9], patience=2)
max_train_minutes = 5.0
test_after_training = True
