"""The Probabilistic U-Net on the synthetic LIDC-like set, in the budget of `synthetic_lidc.py`.

Data, backbone (num_filters), batch, epochs and learning-rate schedule are MoSE's demo settings,
so the two train on equal terms; the method's own settings are the published ones (latent size
6, beta 1: Kohl et al. 2018, see `lidc_prob_unet.py`). Evaluation: 16 prior samples per image.
Compared with MoSE and SSN over three seeds by `benchmarks/bench_baselines.py` (README:
Baselines).
"""

experiment_name = "synthetic_lidc_prob_unet"
log_dir_name = "synthetic"
dataset = "lidc"
data_folder = "synthetic_data/lidc_wobble"
synthetic = "lidc"
synthetic_options = dict(n_train=2000, n_val=200, n_test=200, size=32, seed=0,
                         satellite_with_halo=False, jitter=0.0, wobble=0.6)  # as synthetic_lidc.py
image_size = [32, 32]
method = "prob_unet"
num_filters = [8, 16, 32, 32]  # as synthetic_lidc.py
prob_unet_latent_dim = 6  # Kohl et al. 2018
beta = 1.0  # Kohl et al. 2018
train_batch_size = 32
val_batch_size = 50
test_batch_size = 50
epochs = 16
lr = 3e-3  # as synthetic_lidc.py: a larger step on a short run, then
lr_schedule = "cosine"  # a decay to the end of the run
test_after_training = True
