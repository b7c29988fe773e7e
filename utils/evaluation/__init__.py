"""Evaluation of a predictive distribution: metrics (`metrics.py`: GED, M-IoU, streaming ECE),
the loop over a split (`loop.py`), comparison with a known true distribution (`results.py`,
`calibration.py`), sample-count sweeps (`sweep.py`), figures (`visualize.py`), the analyses
written beside a results file (`report.py`), evaluating a checkpoint on a split (`run.py`) and
predicting new images with their uncertainty maps (`predict.py`, figure in `predict_figure.py`).

May import `utils.runtime`, `utils.config`, `data` (label names) and, in `run.py` and
`predict.py` only, `utils.build`; never `utils.training` or `utils.loss`.
"""
