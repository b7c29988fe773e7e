"""The Probabilistic U-Net on the synthetic LIDC-like set, with the settings the comparison
protocol chose for it.

Data, backbone (num_filters), batch, evaluation and the cosine learning-rate schedule are those
of `synthetic_lidc_paper.py`, so the methods differ only in the model and its objective. The
learning rate and β were chosen on the validation split (seed 0, 32 epochs) from the grid every
method gets: lr ∈ {1e-3, 3e-3, 1e-2}, then β ∈ {1 (Kohl et al. 2018), 10} at the chosen rate
(`benchmarks/bench_comparison.py`, docs/comparison.md). 48 epochs, the protocol's
long budget, where every method's validation GED has stopped falling.
Latent size 6 is the published one (`lidc_prob_unet.py`). Evaluation: 16 prior samples per
image.
"""

_base_ = "synthetic_lidc_paper.py"
experiment_name = "synthetic_lidc_prob_unet"
method = "prob_unet"
prob_unet_latent_dim = 6  # Kohl et al. 2018
beta = 10.0  # chosen on validation from {1, 10}
lr = 1e-2  # chosen on validation from {1e-3, 3e-3, 1e-2}
epochs = 48
