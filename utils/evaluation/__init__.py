"""Evaluation of a predictive distribution, as numbers and arrays: metrics (`metrics.py`: GED,
M-IoU, streaming ECE), the loop over a split (`loop.py`), comparison with a known true
distribution (`results.py`, `calibration.py`), sample-count sweeps (`sweep.py`), evaluating a
checkpoint on a split (`run.py`: the results file) and inference on new images (`inference.py`:
samples, weights, π, expert modes and uncertainty maps as arrays).

May import `utils.labels`, `utils.runtime`, `utils.config`, `utils.build` and `data`; never
`utils.reports`, `utils.training` or `utils.loss` (tests/test_layering.py).
"""
