"""The Ray executor on a local Ray (2 CPUs): six tiny runs at once, never more than two training, live
metrics, and the same results as the local queue (issue 30). The cluster cases are in test_cluster.py."""
import os
import sys
import time
from datetime import datetime

import numpy as np
import pytest

from noisycore import executors, jobs, runs
from helpers import quadrant_folder, tiny_config

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"   # read when ray is imported: bind to 127.0.0.1
ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray,
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and prctl")]
TIMEOUT = 300


@pytest.fixture(scope="module")
def ray_executor():
    from noisycore import cluster

    ray.init(num_cpus=2, include_dashboard=False, namespace=cluster.NAMESPACE, log_to_driver=False,
             logging_level="error")
    try:
        yield cluster.connect("local-test")
    finally:
        ray.shutdown()
        cluster._CONNECTIONS.clear()
        jobs.LIVENESS.pop("ray", None)


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    return quadrant_folder(tmp_path_factory.mktemp("quadrants"), n_per_class=40)


def config(folder, seed):
    return tiny_config(folder, epochs=3, seed=seed, model="compact_cnn")


def most_at_once(run_dirs) -> int:
    """The largest number of runs between their started and finished times (an end before a start
    at the same second: status times have one-second resolution)."""
    events = []
    for r in run_dirs:
        s = runs.read_status(r)
        events += [(datetime.fromisoformat(s["started"]), 1), (datetime.fromisoformat(s["finished"]), -1)]
    now = top = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        now += step
        top = max(top, now)
    return top


def test_six_runs_on_two_cpus_all_finish_two_at_a_time_with_live_metrics(ray_executor, quadrants, tmp_path):
    root = tmp_path / "runs"
    local = jobs.start(config(quadrants, seed=0), root=tmp_path / "local", name="local")
    started = [ray_executor.start(config(quadrants, seed=s % 3), root=root, name=f"r{s}") for s in range(6)]
    assert executors.executor(None) is executors.LOCAL          # no cluster configured: the local queue
    seen = {r: set() for r in started}
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        states = {r: jobs.poll(r)["state"] for r in started + [local]}
        for r in started:
            if states[r] == "running":
                seen[r].add(len(runs.read_metrics(r)))
        if all(s not in runs.ACTIVE_STATES for s in states.values()):
            break
        time.sleep(0.05)   # 3 epochs of tiny images: poll often enough to see two of them live
    for r in started + [local]:
        assert runs.read_status(r)["state"] == "finished", (r / "log.txt").read_text()[-3000:]
    assert most_at_once(started) <= 2
    assert all(len(seen[r] - {0}) >= 2 for r in started), {r.name: seen[r] for r in started}  # epochs seen live
    status = runs.read_status(started[0])
    assert status["executor"] == "ray" and status["node"].endswith(ray.get_runtime_context().get_node_id()[:8])
    assert status["heartbeat"] > 0 and not (started[0] / "backup").exists()   # the epoch backup is gone when done
    ours, theirs = runs.read_metrics(started[0]), runs.read_metrics(local)
    assert ours["epoch"].tolist() == theirs["epoch"].tolist() == [1, 2, 3]
    for col in ("loss", "accuracy", "val_accuracy", "test_accuracy"):   # the same seed, the same run
        np.testing.assert_allclose(ours[col], theirs[col], atol=2e-3, err_msg=col)


def test_the_train_page_on_a_cluster_reserves_the_sidebars_cpus_per_run(ray_executor, monkeypatch):
    """NOISYLAB_CLUSTER set: the sidebar shows the cluster and its CPUs per run (at most the largest node's 2),
    and Start training submits the run with that reservation, recorded in status.json."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NOISYLAB_CLUSTER", "local-test")     # the connection the fixture made in this process
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120).run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("Cluster local-test: 1 node(s)") for c in at.sidebar.caption)
    cpus = at.sidebar.number_input(key="cluster.cpus_per_run")
    assert (cpus.value, cpus.max) == (1, 2)
    cpus.set_value(2).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    [run_dir] = runs.run_dirs(Path(os.environ["NOISYLAB_RUNS"]))
    status = runs.read_status(run_dir)
    assert status["executor"] == "ray" and status["cpus"] == 2
    executors.stop(run_dir)                                       # the page's Stop: file + ray.cancel
    deadline = time.monotonic() + TIMEOUT
    while jobs.poll(run_dir)["state"] in runs.ACTIVE_STATES and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs.poll(run_dir)["state"] == "stopped"
