"""Shared test setup: every test writes its caches, label sets and runs into a temporary folder."""
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("noisylab-home")
    monkeypatch.setenv("NOISYLAB_HOME", str(home))
    monkeypatch.setenv("NOISYLAB_RUNS", str(home / "runs"))
    yield home
