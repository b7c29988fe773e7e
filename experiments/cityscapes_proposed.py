"""Multimodal Cityscapes (quarter resolution, 32 modes from five flippable classes).

The paper's Cityscapes setting: 35 experts with a 5-dimensional latent, cross-entropy cost on
logits, a small initial capacity gamma and soft-gradient grouping, with the black-box
prediction as a 4th input channel (`--set use_bbpred=False` trains on the image alone; the
input channels follow automatically).
"""

experiment_name = "cityscapes_proposed"
log_dir_name = "cityscapes"
dataset = "cityscapes"
data_folder = "../data/cityscape_npy_5"  # the authors' default location
n_classes = 25  # 19 Cityscapes classes + void + 5 flipped copies
eval_class_ids = [2, 12, 14, 9, 1, 20, 21, 22, 23, 24]  # the flippable classes and their copies
image_size = [128, 128]  # training crops of the 256x512 images (checked before training)
use_bbpred = True
num_expert = 35  # K >= 2**latent_dim = 32 codes
latent_dim = 5
sample_per_mode = 1  # S = 1 -> 2 by the S scheduler
masked_pred = True  # void pixels are not scored: predict class 0 there
softmax = False  # the 'ce' cost takes logits
cost_fn = "ce"
gamma0 = 1 / 32  # each sample may carry at most 1/32 of the mass: spreads samples over modes
G0 = 1.0
num_chunks = 16  # the (B, N, M, C, H*W) cost tensor is too large to build at once
train_batch_size = 12
val_batch_size = 12
test_batch_size = 1  # full 256x512 test images with 35+ samples each
epochs = 1000
gamma_scheduler_options = dict(values=[1.0], patience=30)
S_scheduler_options = dict(values=[2], patience=30)
G_scheduler_options = dict(values=[0.95, 0.925, 0.9], patience=30)
logging_frequency = 2
validation_frequency = 2
