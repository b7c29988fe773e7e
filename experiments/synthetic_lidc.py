"""First run: MoSE on the synthetic LIDC-like set, train + test on a CPU in a few minutes.

The data (32x32 ambiguous blobs with two or three true mask modes of four types, four
annotations drawn from them) is generated into synthetic_data/lidc_wobble on the first run.
After training, the best checkpoint is evaluated on the test split and compared with the true
distribution.

The set and the recipe are the ones that learn every mode type with its probability
(docs/extensions.md describes each choice, docs/results.md has the measurements):
- the annotators trace each outline differently (wobble 0.6 px, no radius jitter), and an image
  shows a halo or a satellite, never both. With the generator's defaults (radius jitter 0.75
  px, up to four modes) MoSE's loss itself prefers experts for a smaller and a larger core to
  an expert for the satellite (research/mode_costs.py);
- revive_experts: an expert left without annotations in the equal-capacity phase is re-seeded
  from the worst-fitting live one, and the exact coupling of the γ < 1 phases lets the copy
  split off. Without re-seeding, seed 2 of 3 failed (GED ratio 1.43-1.51: one expert nearly
  unused, the others in mixed roles);
- coupling 'expert': the exact transport optimum while γ < 1; at γ = 1 every annotation goes
  to the expert whose samples are nearest on average and is shared among that expert's
  samples. With the per-sample rule one expert per run drew different modes in different
  images and draws, which no weight per expert can follow; with this rule every expert keeps
  one role (research/gate_limit.py, expert_roles);
- gate_input 'image' and gate_refit_steps: the gate reads the image through a small CNN of its
  own (the cues are the contrast of small regions, which the bottleneck's global average
  blurs), and after training it is fitted anew to the training signal with the backbone and
  the experts frozen (utils/training/gate_refit.py);
- gate_tta: at evaluation the gate's π is the mean over the image's eight flips and quarter
  turns, the views the refit trains on (models/gating.py).
"""

experiment_name = "synthetic_lidc"
log_dir_name = "synthetic"
dataset = "lidc"
data_folder = "synthetic_data/lidc_wobble"
synthetic = "lidc"
synthetic_options = dict(n_train=2000, n_val=200, n_test=200, size=32, seed=0,
                         satellite_with_halo=False, jitter=0.0, wobble=0.6)
image_size = [32, 32]
num_filters = [8, 16, 32, 32]  # a small U-Net: 32x32 inputs need few levels and channels
latent_dim = 2  # the four experts start at the corners of the unit square, well apart
coupling = "expert"  # exact transport below γ = 1, annotations to experts at γ = 1 (docstring)
revive_experts = dict(threshold=0.03, epochs=[3, 14])  # re-seed an expert below 3 % of the mass
gate_input = "image"  # the gate reads the image through a CNN of its own (see the docstring)
gate_refit_steps = 1200  # refit the gate of the best checkpoint at the end (see the docstring)
gate_tta = True  # evaluate the gate on the image's flips and quarter turns (see the docstring)
gamma0 = 1 / 16  # = 1/(K*S): at first every sample carries the same mass, so every expert is
# matched to annotations before the masks are learnt; then 1/8 (an expert's four samples may
# carry half of the mass: samples become sharp masks, experts specialise), then 1 to fit the
# weights
gamma_scheduler_options = dict(values=[1 / 8, 1.0], milestones=[2, 6])
train_batch_size = 32
val_batch_size = 50
test_batch_size = 50
epochs = 16
lr = 3e-3  # a small model on few epochs: a larger step, then
lr_schedule = "cosine"  # a decay to the end of the short run (the plateau rule needs 10+ epochs)
test_after_training = True
