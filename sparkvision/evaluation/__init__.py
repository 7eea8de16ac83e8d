"""Evaluation: test metrics of a trained run and the published champion, plots, report, blessing."""
