"""What is shown or written for people, from what `utils.evaluation` computes: figures
(`figures.py`: sample grids, reliability diagrams, sweeps, mode calibration; `prediction_figure.py`:
the per-image figure of `--predict`), the analyses written beside a results file and the
TensorBoard sample grid (`analyses.py`, with `report_checkpoint`: evaluate, then report), the
files of `--predict` (`prediction.py`) and the review page of a run (`review_cards.py` gathers
the cards, `review_tiles.py` draws their image strips, `review_page.py` and `review_assets.py`
write the HTML).

May import `utils.evaluation` and what it may import; nothing below imports this package
(tests/test_layering.py).
"""
