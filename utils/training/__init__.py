"""The training run: the engine (`engine.py`: one epoch; `evaluate` re-exported), the learning
rate, γ / S / G schedulers and the loss monitor (`schedulers.py`), the running state of a run
(`state.py`: progress and the parts that step), the resume file (`resume.py`), expert
re-seeding (`revive.py`), the gate refit (`gate_refit.py`) and the trainer that owns the epoch
loop, validation, checkpoints and resume (`trainer.py`).

The top layer: may import every other package of `utils`, `data` and `models`.
"""
