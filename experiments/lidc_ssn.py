"""LIDC-IDRI with all four annotations: Stochastic Segmentation Networks (Monteiro et al.,
NeurIPS 2020).

Same data, split, augmentation, metrics and sample count (N = 16 uniform samples) as
`lidc_proposed.py`; the model and its training follow the published SSN LIDC setting. The SSN
paper's LIDC results came from a fork of the PHiSeg code (README of
github.com/biomedia-mira/stochastic_segmentation_networks, section "LIDC 2D"); numbers below are
from github.com/MiguelMonteiro/PHiSeg-code, phiseg/experiments/proposed_4annot.py [P] and
phiseg/model_zoo/likelihoods.py `proposed` [P-model], and from the paper [M] (Monteiro et al.
2020, arXiv:2006.06015: rank 10, 20 Monte-Carlo samples).
"""

experiment_name = "lidc_ssn"
log_dir_name = "lidc"
dataset = "lidc"
data_folder = "../data/lidc_npy"
method = "ssn"
num_filters = [32, 64, 128, 192, 192, 192, 192]  # [P] n0 = 32, 7 levels (MoSE's backbone)
ssn_rank = 10  # [M], [P] rank = 10
ssn_mc_samples = 20  # [M], [P] mc_samples = 20
train_batch_size = 12  # [P] batch_size = 12
lr = 1e-3  # [P] lr_schedule_dict = {0: 1e-3}, constant, Adam
weight_decay = 0.0  # [P] no weight decay in the proposed_4annot setting
lr_schedule = "cosine"  # [P] keeps 1e-3; a constant rate is cosine with min_lr = lr
scheduler_options = dict(min_lr=1e-3)
epochs = 620  # [P] 500k iterations x 12 images / about 9.7k training crops (64 % of
# the 15,096 crops, split by series)
