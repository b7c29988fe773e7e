"""Library code of the MoSE reimplementation, in sub-packages by concern (lowest layer first).

- `utils.config`: settings (defaults, config files, `--set`, validation) and user errors.
- `utils.runtime`: process services: checkpoints, seeding, logging, DDP, the CPU allocator.
- `utils.evaluation`: metrics (GED, M-IoU, ECE), the evaluation loop, truth comparisons,
  figures, sweeps and reports, evaluating a checkpoint.
- `utils.loss`: training objectives (the OT loss of MoSE and its parts).
- `utils.training`: the engine (one epoch), schedulers, resume state and the trainer.
- `utils.build`: config -> device, data loaders, model and loss.

A package imports only from packages listed above it (and `data`, `models`); `utils.config`
imports nothing heavy, so a config error is reported before torch is loaded. The modules
`utils.checkpoint`, `utils.ot_loss` and `utils.metrics` re-export the public API (docs/design.md,
'Layering').
"""
