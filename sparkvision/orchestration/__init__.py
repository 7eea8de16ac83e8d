"""Orchestration: the Airflow glue of the DAGs (form, run configs, sensors, spark-submit tasks).

Light to import (no TensorFlow, Spark, OpenCV or pyarrow; an import contract checks it): DAG
files import it at parse time. Hooks are created inside the functions that run in a task.
"""
