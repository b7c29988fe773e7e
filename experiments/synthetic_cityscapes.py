"""Synthetic Cityscapes-like scenes (25 ids, 32 flip modes, noisy black-box prediction) on a CPU.

A scaled-down cityscapes_proposed.py: the same loss ('ce' cost, gamma 1/32 -> 1, soft-gradient
grouping G 1 -> .95 -> .925 -> .9, S 1 -> 2), void masking and black-box input channel, with a
small U-Net, 64x128 scenes (32x32 training crops, full scenes at test) and a few epochs. The
schedules move at fixed epochs: a run this short never reaches the paper's 30-epoch plateaus.
The data is generated into synthetic_data/cityscapes on the first run.
"""

experiment_name = "synthetic_cityscapes"
log_dir_name = "synthetic"
dataset = "cityscapes"
data_folder = "synthetic_data/cityscapes"
synthetic = "cityscapes"
synthetic_options = dict(n_train=400, n_val=60, n_test=60, seed=0)
n_classes = 25
eval_class_ids = [2, 12, 14, 9, 1, 20, 21, 22, 23, 24]
image_size = [32, 32]  # training crops of the 64x128 scenes
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
epochs = 10
lr = 3e-3
lr_schedule = "cosine"
gamma_scheduler_options = dict(values=[1.0], milestones=[3])
S_scheduler_options = dict(values=[2], milestones=[6])  # N = 70 from epoch 7: slower epochs
G_scheduler_options = dict(values=[0.95, 0.925, 0.9], milestones=[7, 8, 9])  # grouping is costly
test_after_training = True
