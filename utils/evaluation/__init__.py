"""Evaluation of a predictive distribution: metrics (`metrics.py`: GED, M-IoU, streaming ECE),
the loop over a split (`loop.py`), comparison with a known true distribution (`results.py`,
`calibration.py`), sample-count sweeps (`sweep.py`), figures (`visualize.py`), the analyses
written beside a results file (`report.py`), evaluating a checkpoint on a split (`run.py`),
predicting new images with their uncertainty maps (`predict.py`, figure in `predict_figure.py`)
and the review page of a run (`review_cards.py` gathers the cards, `review_tiles.py` draws their
image strips, `review_page.py` and `review_assets.py` write the HTML).

May import `utils.runtime`, `utils.config`, `data` (label names) and, in `run.py` and
`predict.py` only, `utils.build` (`review_cards.py` reaches it through `predict.uncertainty`, the
one entropy split); never `utils.training` or `utils.loss`.
"""
