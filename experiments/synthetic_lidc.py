"""First run: MoSE on the synthetic LIDC-like set, train + test on a CPU in a few minutes.

The data (32x32 ambiguous blobs with two to four true mask modes, four annotations drawn from
them) is generated into synthetic_data/lidc on the first run. After training, the best
checkpoint is evaluated on the test split and compared with the true distribution.
"""

experiment_name = "synthetic_lidc"
log_dir_name = "synthetic"
dataset = "lidc"
data_folder = "synthetic_data/lidc"
synthetic = "lidc"
synthetic_options = dict(n_train=2000, n_val=200, n_test=200, size=32, seed=0)
image_size = [32, 32]
num_filters = [8, 16, 32, 32]  # a small U-Net: 32x32 inputs need few levels and channels
latent_dim = 2  # the four experts start at the corners of the unit square, well apart
gamma0 = 1 / 16  # = 1/(K*S): at first every sample carries the same mass, so every expert is
# matched to annotations and none dies before the masks are learnt; then 1/8 (an expert's four
# samples may carry half of the mass: samples become sharp masks, experts specialise, and a
# second expert still receives the overflow of a dominant mode), then 1 to fit the weights
gamma_scheduler_options = dict(values=[1 / 8, 1.0], milestones=[2, 9])
train_batch_size = 32
val_batch_size = 50
test_batch_size = 50
epochs = 16
lr = 3e-3  # a small model on few epochs: a larger step, then
lr_schedule = "cosine"  # a decay to the end of the short run (the plateau rule needs 10+ epochs)
test_after_training = True
