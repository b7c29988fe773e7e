"""LIDC-IDRI with all four annotations: Probabilistic U-Net (Kohl et al., NeurIPS 2018).

Same data, split, augmentation, metrics and sample count (N = 16 uniform samples from the prior)
as `lidc_proposed.py`; the model and its training follow the published Probabilistic U-Net.
Where each number comes from:
- [K] Kohl et al. 2018 (arXiv:1806.05034), LIDC training details in the paper's appendix:
  latent 6, beta 1, lr 1e-4, batch 32, 240k iterations (as recalled when this file was written,
  not re-checked against the PDF: check before quoting; [K-code] agrees on latent, beta, lr and
  iterations).
- [K-code] the official code, github.com/SimonKohl/probabilistic_unet
  (training/prob_unet_config.py, its only config, for Cityscapes): latent_dim 6, beta 1.0,
  7 levels [32, 64, 128, 192, 192, 192, 192] with 3 convs each, 3 fcomb 1x1 convs,
  L2 weight 1e-5, lr 1e-4 -> 5e-5 -> 1e-5 -> 5e-7 at 80k / 160k / 240k iterations.
- [P] the PHiSeg / SSN comparisons' re-implementation, github.com/MiguelMonteiro/PHiSeg-code
  (phiseg/experiments/probunet_4annot.py, also baumgach/PHiSeg-code): n0 32, 7 levels, zdim 6,
  KL weight 1, batch norm, batch 12, Adam lr 1e-3, 500k iterations, one random annotation per
  image and step.
- [port] the common PyTorch port, github.com/stefanknegt/Probabilistic-Unet-Pytorch
  (train_model.py): num_filters [32, 64, 128, 192], latent 2, 4 fcomb convs, beta 10, lr 1e-4,
  batch 5, 10 epochs, L2 1e-5 — a demo setting, not a published one; not used here.
"""

experiment_name = "lidc_prob_unet"
log_dir_name = "lidc"
dataset = "lidc"
data_folder = "../data/lidc_npy"
method = "prob_unet"
num_filters = [32, 64, 128, 192, 192, 192, 192]  # [K-code], [P]; MoSE's backbone too
prob_unet_latent_dim = 6  # [K], [K-code], [P]
beta = 1.0  # KL weight: [K], [K-code], [P]
train_batch_size = 32  # [K]
lr = 1e-4  # [K], [K-code] initial value
weight_decay = 1e-5  # [K-code] L2 weight 1e-5 on sum(w^2)/2: Adam's coupled weight decay 1e-5
lr_schedule = "cosine"  # [K-code] steps down to 5e-7 over the run; a cosine to the same end
scheduler_options = dict(min_lr=5e-7)  # (this repository has no piecewise-constant schedule)
epochs = 800  # [K] 240k iterations x 32 images / about 9.7k training crops (64 % of
# the 15,096 crops, split by series)
