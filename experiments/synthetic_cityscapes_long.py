"""Synthetic Cityscapes, a longer run (30 epochs, roughly 20-30 min on 2 CPU cores).

The demo's scenes, model and loss with a recipe aimed at the flip probabilities (issue 10):
- gamma stays 1/32 for the whole run (no gamma, S or G schedule): with 35 samples and 32 modes
  the coupling stays a one-to-one matching of samples and modes, and every sample's KL target
  is the probability of the mode it is matched with. In a trial where gamma went to 1 (epoch 10
  of 30) the nearest-sample coupling sent the 32 modes to a few experts and the validation
  M-IoU fell from 0.69 to 0.39;
- beta = 20: the KL term is averaged over the N = 35 samples (reference behaviour), so with
  beta = 1 the gating network, which must learn 32 mode probabilities, gets a weak signal.
Measured (seed 0, README "Synthetic demos"): the samples draw every class (IoU of sidewalk,
person, car 0.53 / 0.29 / 0.79) and the vegetation and road flips are learnt with calibrated
weights, but sidewalk, person and car are never drawn flipped (mode total variation 0.77; 60
epochs: 0.78), so the issue-10 targets (per-class flip frequency within 0.05, total variation
<= 0.3) are not met.
"""

experiment_name = "synthetic_cityscapes_long"
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
beta = 20.0
gamma0 = 1 / 32
num_chunks = 4
train_batch_size = 12
val_batch_size = 12
test_batch_size = 6
epochs = 30
lr = 3e-3
lr_schedule = "cosine"
gamma_scheduler_options = None  # gamma stays 1/32: a one-to-one matching of samples and modes
S_scheduler_options = None
G_scheduler_options = None
test_after_training = True
