"""Dagster resources shared by every lineage branch."""


import dagster as dg

from storage.home import BatonHome


class HomeResource(dg.ConfigurableResource):
    """Where raw downloads, shard sets, checkpoints and the MLflow store live (BATON_HOME)."""

    root: str

    @property
    def home(self) -> BatonHome:
        return BatonHome(self.root)


class QualityGates(dg.ConfigurableResource):
    """Thresholds of the blocking asset checks: above them a partition stops its downstream assets."""

    max_reject_rate: float = 0.1
