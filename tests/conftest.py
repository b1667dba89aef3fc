import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh BATON_HOME for one test."""
    from storage.home import BatonHome

    monkeypatch.setenv("BATON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BATON_DATASETS_URI", raising=False)
    return BatonHome(str(tmp_path / "home")).ensure()
