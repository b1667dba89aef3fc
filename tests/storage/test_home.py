from pathlib import Path

from storage.home import REPO_ROOT, BatonHome


def test_default_home_is_in_the_checkout(monkeypatch):
    monkeypatch.delenv("BATON_HOME", raising=False)
    monkeypatch.delenv("BATON_DATASETS_URI", raising=False)
    home = BatonHome.from_env()
    assert home.root == str(REPO_ROOT / ".baton")
    assert (REPO_ROOT / "storage" / "home.py").exists()


def test_layout_and_ensure(tmp_path, monkeypatch):
    monkeypatch.setenv("BATON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BATON_DATASETS_URI", raising=False)
    home = BatonHome.from_env().ensure()
    root = tmp_path / "home"
    assert home.checkpoints == str(root / "cache" / "checkpoints")
    for name in ["dagster", "raw", "datasets", "mlflow", "incoming", "cache", "cache/checkpoints"]:
        assert (root / name).is_dir(), name
    assert home.datasets == str(root / "datasets")
    config = root / "dagster" / "dagster.yaml"
    assert "enabled: false" in config.read_text()
    config.write_text("run_monitoring:\n  enabled: true\n")
    home.ensure()
    assert config.read_text() == "run_monitoring:\n  enabled: true\n"  # a user's instance config is kept


def test_datasets_uri_override_is_not_created_locally(tmp_path, monkeypatch):
    monkeypatch.setenv("BATON_DATASETS_URI", "memory://bucket/datasets")
    home = BatonHome(str(tmp_path)).ensure()
    assert home.datasets == "memory://bucket/datasets"
    assert not (tmp_path / "datasets").exists()
    assert Path(home.mlflow).is_dir()


def test_a_home_from_an_earlier_version_gets_run_monitoring(tmp_path):
    import dagster as dg

    from storage.home import INSTANCE_CONFIG

    config = tmp_path / "dagster" / "dagster.yaml"
    config.parent.mkdir()
    config.write_text("telemetry:\n  enabled: false\n")  # what earlier versions wrote
    home = BatonHome(str(tmp_path)).ensure()
    assert config.read_text() == INSTANCE_CONFIG
    instance = dg.DagsterInstance.from_config(home.dagster)
    assert instance.run_monitoring_enabled and instance.run_monitoring_poll_interval_seconds == 30
