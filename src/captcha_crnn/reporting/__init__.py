"""Pictures and reports: dataset preview, training curves, prediction grids, the evaluation report.

matplotlib (Agg backend, no display) is imported only here, so predicting never pays for it.
"""
