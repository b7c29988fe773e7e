"""Library code of the MoSE reimplementation, in sub-packages by concern (lowest layer first).

- `utils.labels`: argmax label maps of a model's samples.
- `utils.loss`: training objectives (the OT loss of MoSE and its parts, the baselines').
- `utils.methods`: the spec of every method (model, loss, `eval_sample_num`, its settings).
- `utils.config`: settings (defaults, config files, `--set`, validation) and user errors.
- `utils.runtime`: process services: checkpoints, seeding, logging, DDP, the CPU allocator.
- `utils.build`: config -> device, data loaders, model and loss.
- `utils.evaluation`: metrics (GED, M-IoU, ECE), the evaluation loop, truth comparisons,
  sweeps, evaluating a checkpoint, inference on new images.
- `utils.reports`: figures, the analyses beside a results file, prediction outputs and the
  review page.
- `utils.training`: the engine (one epoch), schedulers, resume state and the trainer.

A package imports only from packages listed above it (and `data`, `models`), as the table in
tests/test_layering.py allows; `utils.config` imports nothing heavy, so a config error is
reported before torch is loaded. The modules `utils.checkpoint`, `utils.ot_loss` and
`utils.metrics` re-export the public API (docs/design.md, 'Layering').
"""
