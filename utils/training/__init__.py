"""The training run: the engine (`engine.py`: one epoch; `evaluate` re-exported), the learning
rate, γ / S / G schedulers and the loss monitor (`schedulers.py`), the resume state
(`resume.py`) and the trainer that owns the epoch loop, validation, checkpoints and resume
(`trainer.py`).

The top layer: may import every other package of `utils`, `data` and `models`.
"""
