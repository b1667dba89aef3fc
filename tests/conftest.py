import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh BATON_HOME for one test."""
    from storage.home import BatonHome

    monkeypatch.setenv("BATON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BATON_DATASETS_URI", raising=False)
    return BatonHome(str(tmp_path / "home")).ensure()


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is present."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
