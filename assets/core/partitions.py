"""The dynamic partition sets that several system packages share, named once.

Datasets, recordings and video batches arrive at run time (a sensor, a manifest, the CLI), so
their partitions are dynamic; the systems that train on them partition by their own static keys.
"""

import dagster as dg

DATASETS = dg.DynamicPartitionsDefinition(name="datasets")
RECORDINGS = dg.DynamicPartitionsDefinition(name="recordings")
VIDEO_BATCHES = dg.DynamicPartitionsDefinition(name="video_batches")
