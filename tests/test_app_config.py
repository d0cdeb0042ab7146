"""The server settings a user gets with the README's install steps (.streamlit/config.toml)."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_file_watcher_is_off_so_an_idle_server_stays_idle():
    """With the watcher on and the README's .venv inside the app folder, Streamlit's inotify watcher
    overflowed and kept a CPU core busy whenever a tab was open (issue 14; tests/e2e/test_classroom.py
    measures the idle server)."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["fileWatcherType"] == "none"
    assert not config["server"].get("runOnSave", False)
