"""The paper's MoSE on the synthetic LIDC demo's data: train + test on a CPU in a few minutes.

Exactly the method of the paper and of the authors' code: the gating network reads the U-Net
bottleneck, the OT loss couples samples and annotations by the authors' greedy rule, and
nothing is added after training. Beside it, `synthetic_lidc.py` is the same data and schedule
with the project's extensions (docs/extensions.md), and docs/results.md compares the two.

The schedule is the demo's: a learning rate of 3e-3 decayed by a cosine over the 16 epochs
(the paper's plateau rule needs more epochs than 16 to act), and the capacity γ raised from
1/16 (every sample carries the same mass, so every expert is matched to annotations before the
masks are learnt) to 1/8 after epoch 2 (samples become sharp masks, experts specialise) and to
1 after epoch 6 (the weights are fitted). The paper's own schedule on this data (lr 1e-3, γ
1/16 -> 1 at epoch 7) is a row of the ablation (`python -m benchmarks.bench_learning
--ablation lidc`).
"""

experiment_name = "synthetic_lidc_paper"
log_dir_name = "synthetic"
dataset = "lidc"
data_folder = "synthetic_data/lidc_wobble"
synthetic = "lidc"
synthetic_options = dict(n_train=2000, n_val=200, n_test=200, size=32, seed=0,
                         satellite_with_halo=False, jitter=0.0, wobble=0.6)
num_filters = [8, 16, 32, 32]  # a small U-Net: 32x32 inputs need few levels and channels
latent_dim = 2  # the four experts start at the corners of the unit square, well apart
gamma0 = 1 / 16  # = 1/(K*S): every sample carries the same mass at first (see the docstring)
gamma_scheduler_options = dict(values=[1 / 8, 1.0], milestones=[2, 6])
train_batch_size = 32
val_batch_size = 50
test_batch_size = 50
epochs = 16
lr = 3e-3  # a small model on few epochs: a larger step, then
lr_schedule = "cosine"  # a decay to the end of the short run
test_after_training = True
