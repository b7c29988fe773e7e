"""Stochastic Segmentation Networks on the synthetic LIDC-like set, in the budget of
`synthetic_lidc.py`.

Data, backbone (num_filters), batch, epochs and learning-rate schedule are MoSE's demo settings,
so the two train on equal terms; the method's own settings are the published ones (rank 10,
20 Monte-Carlo samples: Monteiro et al. 2020, see `lidc_ssn.py`). Evaluation: 16 logit samples
per image. Compared with MoSE and the Prob. U-Net over three seeds by
`benchmarks/bench_baselines.py` (README: Baselines).
"""

experiment_name = "synthetic_lidc_ssn"
log_dir_name = "synthetic"
dataset = "lidc"
data_folder = "synthetic_data/lidc_wobble"
synthetic = "lidc"
synthetic_options = dict(n_train=2000, n_val=200, n_test=200, size=32, seed=0,
                         satellite_with_halo=False, jitter=0.0, wobble=0.6)  # as synthetic_lidc.py
image_size = [32, 32]
method = "ssn"
num_filters = [8, 16, 32, 32]  # as synthetic_lidc.py
ssn_rank = 10  # Monteiro et al. 2020
ssn_mc_samples = 20  # Monteiro et al. 2020
train_batch_size = 32
val_batch_size = 50
test_batch_size = 50
epochs = 16
lr = 3e-3  # as synthetic_lidc.py: a larger step on a short run, then
lr_schedule = "cosine"  # a decay to the end of the run
test_after_training = True
