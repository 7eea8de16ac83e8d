"""Serving: score images with a model on the Spark executors (batch inference and evaluation).

One scoring code path (``sparkvision.serving.scoring``): a SavedModel shipped once per executor
and loaded once per Python worker, used by the ``batch_inference`` DAG's scoring job
(``sparkvision.serving.batch``) and by the evaluation of a trained run. docs/serving.md describes it.
"""
