# The sparkvision Airflow image: the official image plus Java (for spark-submit) and the pinned stack.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless libkrb5-dev gcc \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow
COPY requirements.lock /requirements.lock
RUN pip install --no-cache-dir -r /requirements.lock \
 && pip install --no-cache-dir --force-reinstall --no-deps "$(grep '^pyspark==' /requirements.lock)"
COPY --chown=airflow:root sparkvision /opt/sparkvision/sparkvision
COPY --chown=airflow:root spark_jobs /opt/sparkvision/spark_jobs
COPY --chown=airflow:root pyproject.toml README.md /opt/sparkvision/
RUN pip install --no-cache-dir --no-deps /opt/sparkvision
ENV SPARKVISION_SPARK_JOBS=/opt/sparkvision/spark_jobs SPARKVISION_JVM_DIR=/opt/airflow/sparkvision-jvm
# the ingest's Java classes (HDFS listing and reading), compiled once here
RUN python -m sparkvision.ingest.hadoop
