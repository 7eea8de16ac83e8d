"""Ingest: raw image drops -> curated Parquet, every unusable file quarantined with its reason.

``images`` decodes one file (OpenCV), ``files`` lists and reads a drop, ``decode`` turns files
into Arrow rows, ``summary`` computes the statistics and the manifest, ``run`` is the Spark plan.
"""
