"""Stochastic Segmentation Networks on the synthetic LIDC-like set, in the budget of
`synthetic_lidc.py`.

Data, backbone (num_filters), batch, epochs and learning-rate schedule are the base's, MoSE's
demo settings, so the two train on equal terms (MoSE's own settings do not apply to this
method); the method's own settings are the published ones (rank 10, 20 Monte-Carlo samples:
Monteiro et al. 2020, see `lidc_ssn.py`). Evaluation: 16 logit samples per image. Compared with
MoSE and the Prob. U-Net over three seeds by `benchmarks/bench_baselines.py`.
"""

_base_ = "synthetic_lidc_paper.py"
experiment_name = "synthetic_lidc_ssn"
method = "ssn"
ssn_rank = 10  # Monteiro et al. 2020
ssn_mc_samples = 20  # Monteiro et al. 2020
