"""sparkvision: Airflow-orchestrated image recognition on Spark, TensorFlow/Keras and HDFS."""

from __future__ import annotations

__version__ = "0.1.0"
