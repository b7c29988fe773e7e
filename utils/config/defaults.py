"""Every setting with its default and one comment (the paper's LIDC setting), plus the accepted
types, choices and aliases that `utils.config.config` checks config files and `--set` against.
The dataset and method names are those registered in `data.specs` and `utils.methods`.
"""

from typing import Any, Dict

# The defaults are the paper's LIDC setting (MoSE, ICLR 2023); other configs override them.
DEFAULTS: Dict[str, Any] = dict(
    # --- run identity and output folders ---
    experiment_name="mose",  # run name: run folder is <log_root>/<log_dir_name>/<experiment_name>
    log_root="log",  # root of the run folders (checkpoints, text log, metrics.jsonl, results)
    log_dir_name="lidc",  # group folder under log_root (the authors use 'lidc' / 'cityscapes')
    run_root="runs",  # TensorBoard root; events go to <run_root>/<log_dir_name>/<experiment_name>
    seed=0,  # seeds python, numpy, torch and the DataLoader workers
    eval_seed=0,  # evaluation sampling: batch j draws from a generator seeded by (eval_seed, j),
    # so GED repeats exactly and is independent of the process count (utils/runtime/distributed.py)
    cpu_malloc_reuse=True,  # on CPU, keep freed memory (utils/runtime/cpu_memory.py; faster)
    device="auto",  # 'auto' (cuda if available), 'cpu' or 'cuda'; --device overrides
    sync_bn=False,  # torchrun on GPUs: SyncBatchNorm (statistics over all processes); the head
    # then runs as plain modules (fast_head is bypassed: it normalises outside the BN modules)
    pretrained_model_full_path=None,  # weights to start training from; --demo evaluates them
    # --- data ---
    dataset="lidc",  # a registered dataset (data/specs.py): 'lidc', 'cityscapes' or 'folder'
    # (your own data, data/folder/); its spec gives what is particular to it
    data_folder="../data/lidc_npy",  # processed npy layout (docs/datasets.md)
    synthetic=None,  # None, or the dataset's name ('lidc', 'cityscapes'): generate a synthetic
    # set into data_folder if it is absent
    synthetic_options={},  # keyword arguments of data.synthetic.make_<synthetic> (sizes, seed)
    n_classes=None,  # C, classes of the segmentation output; None: the dataset's (lidc 2:
    # background, lesion; cityscapes 25; folder 2)
    input_channels=None,  # None: derived (lidc 1; cityscapes 4 with use_bbpred, else 3;
    # folder: the channels of data_folder's first image)
    num_w=0,  # DataLoader worker processes
    image_size=None,  # [H, W] of the training inputs (after cropping); None: whatever the data
    # gives; when set, checked against the first training item before training starts
    label_range=None,  # None: all annotations; else the annotation indices used for training
    eval_class_ids=None,  # classes scored by the metrics; None: the dataset's (lidc [1], the
    # lesion; cityscapes the five flip classes and their copies; folder every class 1..C-1)
    use_bbpred=True,  # cityscapes only: append the black-box prediction as an input channel
    # --- method: MoSE, or a baseline in the same protocol (models/prob_unet.py, models/ssn.py) ---
    method="mose",  # a registered method (utils/methods.py): 'mose', 'prob_unet' (Kohl et al.
    # 2018) or 'ssn' (Monteiro et al. 2020). The baselines share the backbone (num_filters),
    # data, metrics and protocol; each method's spec names the settings that apply to it (the
    # gamma / S / G schedules, revive_experts and gate_refit_steps are switched off for the
    # baselines); beta is the Prob. U-Net's KL weight; eval_sample_num None means 16 samples
    prob_unet_latent_dim=6,  # Prob. U-Net latent size L (Kohl et al. 2018: 6)
    ssn_rank=10,  # SSN rank of the covariance factor (Monteiro et al. 2020: 10)
    ssn_mc_samples=20,  # SSN Monte-Carlo logit samples of the training loss (Monteiro et al.: 20)
    # --- model ---
    num_filters=[32, 64, 128, 192, 192, 192, 192],  # U-Net channels per level (any depth >= 2)
    latent_dim=1,  # L, latent dimension of every expert; needs num_expert >= 2**latent_dim
    num_expert=4,  # K, experts in the mixture
    sample_per_mode=4,  # S, samples drawn from every expert (compact representation, N = K*S)
    masked_pred=False,  # replace predictions on void pixels (label 0) by class 0 (datasets with
    # a void label: cityscapes)
    softmax=True,  # the model outputs probabilities (True, 'iou' cost) or logits (False, 'ce')
    eval_sample_num=None,  # None: compact evaluation; an int N: standard representation, N samples
    fast_head=True,  # head as folded matrix products (same maths, faster; docs/performance.md)
    channels_last=True,  # backbone in channels-last memory format (faster CPU convolutions)
    amp=False,  # bf16 autocast of the model forward; losses, coupling, metrics stay fp32
    compile_head=False,  # fast head: torch.compile its batch-norm kernels (fused loops; ~15 s
    # compile at the first step, eager fallback with one warning)
    fastest=False,  # True: amp and compile_head chosen for the device at the start of the run
    # (utils/runtime/fastest.py; logged); an explicit amp or compile_head with it is an error
    # --- loss (Wasserstein-like OT loss) ---
    cost_fn="iou",  # pairwise cost between a sample and an annotation: 'iou' or 'ce'
    beta=1.0,  # weight of the KL term on the sample weights
    gamma0=0.5,  # initial capacity of every sample in the coupling
    G0=1.0,  # initial soft-gradient grouping threshold (G < 1 merges similar experts)
    num_chunks=1,  # chunks of the pairwise cost computation (memory for large N, M, C)
    # --- extensions of the method: NOT in the paper or the authors' code --------------------
    # Each value below is the paper's method; docs/extensions.md has the rule, the ablation
    # that measures it and when to turn it on. The synthetic demos turn them on.
    coupling="greedy",  # 'greedy' (the paper's rule); 'exact': the transport optimum (POT), for
    # many modes with small differences (synthetic Cityscapes); 'expert': exact while γ < 1, then
    # every annotation to its nearest expert, so that each expert keeps one role
    revive_experts=None,  # None, or dict(threshold=t, epochs=[first, last]): after those epochs
    # an expert with less than a share t of the coupled mass is re-seeded from a live one
    gate_input="bottleneck",  # 'bottleneck' (the paper); 'image': the gate reads the input image
    # through a small CNN of its own, for cues the bottleneck's global average blurs
    gate_refit_steps=0,  # 0, or N: after training, refit the gate of the best checkpoint to the
    # training signal with the rest frozen (N Adam steps); when π lags the experts
    gate_tta=False,  # with gate_input='image': π at evaluation is the mean over the image's
    # views that the dataset allows (lidc, folder: flips and quarter turns; cityscapes: mirror)
    # --- optimisation ---
    train_batch_size=16,  # images per training step
    val_batch_size=16,  # images per validation step
    test_batch_size=16,  # images per test step (metrics are per-image means: no effect on them)
    epochs=200,  # training epochs
    lr=1e-3,  # Adam learning rate
    weight_decay=1e-5,  # Adam weight decay
    lr_schedule="plateau",  # 'plateau' (ReduceLROnPlateau on the monitored loss, as the paper) or
    # 'cosine' (per-epoch cosine decay from lr to scheduler_options['min_lr'] over the run)
    scheduler_options=dict(mode="min", factor=0.5, patience=10, min_lr=1e-5),  # ReduceLROnPlateau
    gamma_scheduler_options=dict(values=[1.0], patience=10),  # gamma values after gamma0, or None
    S_scheduler_options=None,  # sample_per_mode values after the initial one, or None
    G_scheduler_options=None,  # G values after G0, or None
    scheduler_mean="running",  # loss fed to the schedulers: 'running' (since start, as the
    # reference code) or 'epoch' (mean over the epoch just finished)
    logging_frequency=1,  # epochs between training summaries in the text log and TensorBoard
    validation_frequency=1,  # epochs between validations (also run before the first epoch)
    max_train_minutes=None,  # None or a wall-clock budget for training: no epoch is started that
    # would end past it, one still running at the deadline stops after its current step (with
    # lr_schedule='cosine' the decay is compressed to the epochs that fit)
    test_after_training=False,  # evaluate the best checkpoint on the test split after training
    # --- evaluation: metric conventions and extra outputs (utils/reports/analyses.py) ---
    empty_distance="zero",  # GED / M-IoU: two empty masks are at distance 0 ('zero', as MoSE)
    # or the pair is undefined and left out ('skip'); docs/metrics.md
    matching="hungarian",  # M-IoU: replicated annotations + Hungarian ('hungarian', as MoSE) or
    # optimal transport ('ot'); weighted samples always use optimal transport
    num_figures=4,  # --demo val/test: sample grids of the first images in <split>/figures/, a
    # reliability diagram and the review page index.html (one more pass over the split);
    # training: the first val image's grid to TensorBoard. 0: none of these
    sweep=False,  # --demo val/test: also GED / M-IoU per sample count with bootstrap CIs
    sweep_counts=[1, 4, 16, 32, 100],  # sample counts of the sweep (standard representation;
    # compact with N = K*S nearest to each)
)

# The settings of the extensions block above: in the paper's configs each keeps its default.
EXTENSIONS = ("coupling", "revive_experts", "gate_input", "gate_refit_steps", "gate_tta")

# Settings whose accepted types are not simply the type of their default.
TYPES: Dict[str, tuple] = dict(
    pretrained_model_full_path=(str, type(None)),
    synthetic=(str, type(None)),
    n_classes=(int, type(None)),
    input_channels=(int, type(None)),
    eval_class_ids=(list, type(None)),
    label_range=(list, type(None)),
    image_size=(list, type(None)),
    eval_sample_num=(int, type(None)),
    gamma_scheduler_options=(dict, type(None)),
    S_scheduler_options=(dict, type(None)),
    G_scheduler_options=(dict, type(None)),
    revive_experts=(dict, type(None)),
    max_train_minutes=(float, type(None)),
)

CHOICES: Dict[str, tuple] = dict(
    device=("auto", "cpu", "cuda"),
    cost_fn=("iou", "ce"),
    coupling=("greedy", "exact", "expert"),
    gate_input=("bottleneck", "image"),
    scheduler_mean=("running", "epoch"),
    lr_schedule=("plateau", "cosine"),
    empty_distance=("zero", "skip"),
    matching=("hungarian", "ot"),
)


# Common names of other code bases, so their users get pointed at ours.
ALIASES: Dict[str, str] = dict(
    learning_rate="lr", num_classes="n_classes", batch_size="train_batch_size",
    num_epochs="epochs", n_epochs="epochs", num_workers="num_w", num_experts="num_expert",
    samples_per_mode="sample_per_mode", gamma="gamma0", G="G0", data_dir="data_folder",
    data_root="data_folder", in_channels="input_channels", checkpoint="pretrained_model_full_path",
)
