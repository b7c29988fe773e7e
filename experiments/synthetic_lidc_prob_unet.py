"""The Probabilistic U-Net on the synthetic LIDC-like set, in the budget of `synthetic_lidc.py`.

Data, backbone (num_filters), batch, epochs and learning-rate schedule are the base's, MoSE's
demo settings, so the two train on equal terms (MoSE's own settings do not apply to this
method); the method's own settings are the published ones (latent size 6, beta 1: Kohl et al.
2018, see `lidc_prob_unet.py`). Evaluation: 16 prior samples per image. Compared with MoSE and
SSN over three seeds by `benchmarks/bench_baselines.py`.
"""

_base_ = "synthetic_lidc_paper.py"
experiment_name = "synthetic_lidc_prob_unet"
method = "prob_unet"
prob_unet_latent_dim = 6  # Kohl et al. 2018
beta = 1.0  # Kohl et al. 2018
