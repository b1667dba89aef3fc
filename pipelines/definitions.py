"""The one Dagster code location (workspace.yaml loads `defs` from here).

Each system package contributes its `assets` (and `asset_checks`) from its `defs.py`; adding a
system is adding its package to SYSTEMS.
"""

import dagster as dg

from assets.clipsep import defs as clipsep
from assets.clipsonic import defs as clipsonic
from assets.core.resources import HomeResource, QualityGates
from assets.core.versions import with_code_versions
from assets.cross_dataset import defs as cross_dataset
from assets.deep_performer import defs as deep_performer
from assets.instrumentation import defs as instrumentation
from assets.mmt import defs as mmt
from assets.scores import defs as scores
from assets.videos import defs as videos
from assets.violin import defs as violin
from pipelines.experiments import experiments
from pipelines.jobs import jobs
from pipelines.run_cleanup import end_tracking_runs
from pipelines.schedules import schedules
from pipelines.sensors import sensors
from storage.executors import baton_executor
from storage.home import BatonHome
from storage.io_manager import ShardIOManager
from storage.tracking import MlflowResource, default_artifact_root, default_tracking_uri

SYSTEMS = (scores, violin, videos, cross_dataset, mmt, instrumentation, deep_performer, clipsep, clipsonic)


def build_defs(home: BatonHome) -> dg.Definitions:
    """Definitions bound to one home directory, so tests can point everything at a temporary one."""
    home.ensure()
    return dg.Definitions(
        assets=with_code_versions(a for system in SYSTEMS for a in system.assets),
        asset_checks=[c for system in SYSTEMS for c in getattr(system, "asset_checks", [])],
        jobs=[*jobs, *experiments],
        schedules=schedules,
        sensors=[*sensors, end_tracking_runs],
        executor=baton_executor,
        resources={
            "home": HomeResource(root=home.root),
            "quality": QualityGates(),
            "shard_io": ShardIOManager(datasets_root=home.datasets),
            "tracking": MlflowResource(
                tracking_uri=default_tracking_uri(home), artifact_root=default_artifact_root(home)
            ),
        },
    )


defs = build_defs(BatonHome.from_env())
