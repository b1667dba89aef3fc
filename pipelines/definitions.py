"""The one Dagster code location (workspace.yaml loads `defs` from here)."""


import dagster as dg

from assets.performance.defs import asset_checks as performance_checks
from assets.performance.defs import assets as performance_assets
from assets.performance.model_defs import assets as performance_model_assets
from assets.symbolic.defs import assets as symbolic_assets
from assets.symbolic.instrumentation_defs import assets as instrumentation_assets
from assets.symbolic.mmt_defs import assets as mmt_assets
from assets.video.defs import assets as video_assets
from assets.video.model_defs import assets as video_model_assets
from pipelines.jobs import jobs
from pipelines.resources import HomeResource, QualityGates
from pipelines.schedules import schedules
from pipelines.sensors import sensors
from storage.home import BatonHome
from storage.io_manager import ShardIOManager
from storage.tracking import MlflowResource, default_tracking_uri


def build_defs(home: BatonHome) -> dg.Definitions:
    """Definitions bound to one home directory, so tests can point everything at a temporary one."""
    home.ensure()
    return dg.Definitions(
        assets=[*symbolic_assets, *mmt_assets, *instrumentation_assets, *performance_assets, *performance_model_assets, *video_assets, *video_model_assets],
        asset_checks=performance_checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={
            "home": HomeResource(root=home.root),
            "quality": QualityGates(),
            "shard_io": ShardIOManager(datasets_root=home.datasets),
            "tracking": MlflowResource(
                tracking_uri=default_tracking_uri(home), artifact_root=f"{home.mlflow}/artifacts"
            ),
        },
    )


defs = build_defs(BatonHome.from_env())
