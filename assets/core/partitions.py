"""The dynamic partition sets that several system packages share, named once.

Datasets, recordings and video batches arrive at run time (a sensor, a manifest, the CLI), so
their partitions are dynamic; the systems that train on them partition by their own static keys.
A partition key names folders of the shard store, so every key is checked when it is added.
"""

from collections.abc import Iterable

import dagster as dg

from storage.names import check_name

DATASETS = dg.DynamicPartitionsDefinition(name="datasets")
RECORDINGS = dg.DynamicPartitionsDefinition(name="recordings")
VIDEO_BATCHES = dg.DynamicPartitionsDefinition(name="video_batches")


def add_partitions(
    instance: dg.DagsterInstance, partitions: dg.DynamicPartitionsDefinition, keys: Iterable[str]
) -> list[str]:
    """Add the ``keys`` not yet partitions of ``partitions``; returns those added. UnsafeName, and
    nothing added, when any key is not a plain name (``storage.names.check_name``)."""
    checked = [check_name(key, f"{partitions.name} partition key") for key in keys]
    known = set(instance.get_dynamic_partitions(partitions.name))
    added = list(dict.fromkeys(key for key in checked if key not in known))
    instance.add_dynamic_partitions(partitions.name, added)
    return added
