"""The Ray executor on a simulated cluster (ray.cluster_utils.Cluster: a head without CPUs and two nodes
of one CPU each, one temporary run store): the run store probe, sweep cells and folds side by side on
both nodes, a node killed mid-run, and stop of a run on another node (issue 30)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from noisycore import jobs, runs, sweeps
from noisycore.errors import UserError
from helpers import quadrant_folder, tiny_config, wait_for

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"   # read when ray is imported: bind to 127.0.0.1
ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl, /proc")]
TIMEOUT = 300
TESTS = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"   # nothing listens beyond this machine
FAST_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
               "health_check_initial_delay_ms": 0}


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    from noisycore import cluster

    sim = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                       "node_ip_address": LOOPBACK, "_system_config": FAST_HEALTH})
    nodes = [sim.add_node(num_cpus=1, node_ip_address=LOOPBACK) for _ in range(2)]
    sim.wait_for_nodes()
    ray.init(address=sim.address, namespace=cluster.NAMESPACE, log_to_driver=False, logging_level="error")
    try:
        yield sim, nodes, cluster.connect(sim.address)
    finally:
        ray.shutdown()
        cluster._CONNECTIONS.clear()
        jobs.LIVENESS.pop("ray", None)
        sim.shutdown()


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    return quadrant_folder(tmp_path_factory.mktemp("quadrants"), n_per_class=40)


def node_of(status) -> str:
    return status["node"].rsplit("/", 1)[-1]


def test_a_store_the_nodes_cannot_see_is_refused_and_nothing_is_created(two_nodes, quadrants, tmp_path, monkeypatch):
    _, _, ex = two_nodes
    here = tmp_path / "driver-cwd"
    here.mkdir()
    monkeypatch.chdir(here)          # /proc/self/cwd is this folder here and another one in the nodes' workers
    unseen = "/proc/self/cwd/runs"
    with pytest.raises(UserError, match=r"node \w+ of the cluster cannot use the runs folder") as err:
        ex.start(tiny_config(quadrants), root=unseen)
    assert "\n" not in str(err.value)
    assert list(here.iterdir()) == [], "nothing may be left behind"


def test_sweep_cells_and_folds_run_side_by_side_on_both_nodes(two_nodes, quadrants, tmp_path):
    from noisycore import fanout

    _, _, ex = two_nodes
    spec = sweeps.SweepSpec(base=tiny_config(quadrants, epochs=2), noise="symmetric", rates=(0.0, 0.2),
                            losses=("ce", "gce"))
    sweep_dir = sweeps.create_sweep(spec, tmp_path / "runs" / "sweep-demo")
    reported = []
    table = fanout.sweep(sweep_dir, ex, report=lambda cell, state, row: reported.append((cell.name, state)))
    assert table["state"].tolist() == ["finished"] * 4 and len(reported) == 4
    cell_runs = [sweep_dir / name for name in table["run"]]
    assert len({node_of(runs.read_status(p)) for p in cell_runs}) == 2, "both nodes trained cells"

    run = cell_runs[1]
    probs = fanout.cross_validate(run, ex, folds=4)
    folds = sorted((run / "cv").glob("k4-fold*/run"))
    assert len(folds) == 4 and all(runs.read_status(f)["state"] == "finished" for f in folds)
    assert len({node_of(runs.read_status(f)) for f in folds}) == 2, "both nodes trained folds"
    assert probs.shape == (len(np.load(run / "predictions.npz")["train_ids"]), 4)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(np.load(run / "cv_probs.npy"), probs.astype(np.float32))


def test_a_node_killed_mid_run_loses_no_finished_epoch(two_nodes, quadrants, tmp_path):
    sim, nodes, ex = two_nodes
    epochs = 40          # enough that the kill lands mid-run on a fast machine (12 epochs had all ended first)
    run_dir = ex.start(tiny_config(quadrants, epochs=epochs), root=tmp_path / "runs", name="moving")
    first = wait_for(run_dir, lambda s: (s.get("epochs_done") or 0) >= 3, "three epochs in", timeout=TIMEOUT)
    doomed = next(n for n in nodes if n.node_id.startswith(node_of(first)))
    sim.remove_node(doomed, allow_graceful=False)          # the raylet and everything on the node: killed
    nodes.remove(doomed)
    done = wait_for(run_dir, lambda s: s.get("state") not in runs.ACTIVE_STATES, "ended", timeout=TIMEOUT)
    assert done["state"] == "finished", (run_dir / "log.txt").read_text()[-3000:]
    assert runs.read_metrics(run_dir)["epoch"].tolist() == list(range(1, epochs + 1))   # each epoch once
    assert node_of(done) != node_of(first) and done["moves"][-1]["to"] == done["node"]
    # resumed from the last backed-up epoch: the one recorded at the kill, or the one before it when the
    # kill hit between its metrics row and its backup (that epoch is trained again, recorded once)
    assert first["epochs_done"] - 1 <= done["resumed_at_epoch"] < epochs
    nodes.append(sim.add_node(num_cpus=1, node_ip_address=LOOPBACK))   # two nodes again for the next test
    sim.wait_for_nodes()


def test_stop_of_a_run_on_another_node_ends_it_within_seconds(two_nodes, quadrants, tmp_path):
    _, _, ex = two_nodes
    run_dir = ex.start(tiny_config(quadrants, epochs=500), root=tmp_path / "runs", name="long")
    wait_for(run_dir, lambda s: (s.get("epochs_done") or 0) >= 1, "one epoch in")
    asked = time.monotonic()
    ex.stop(run_dir)
    stopped = wait_for(run_dir, lambda s: s.get("state") not in runs.ACTIVE_STATES, "stopped", timeout=30)
    assert stopped["state"] == "stopped" and time.monotonic() - asked < 15
    assert 1 <= len(runs.read_metrics(run_dir)) < 500 and runs.read_summary(run_dir)["state"] == "stopped"


DRIVER = """
import sys, time
from pathlib import Path
from noisycore import cluster
from helpers import tiny_config
run = cluster.connect(sys.argv[1]).start(tiny_config(Path(sys.argv[2]), epochs=int(sys.argv[4])), root=sys.argv[3],
                                         name="orphan", cpus=1)
print(run, flush=True)
time.sleep(600)
"""


def test_a_run_outlives_the_process_that_started_it(two_nodes, quadrants, tmp_path):
    """The app's server (or a CLI) that started a run is killed: the run finishes, each epoch once, because
    its task belongs to the cluster's detached JobOwner actor, not to the process that asked for it."""
    sim, _, _ = two_nodes
    epochs = 30
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, sim.address, str(quadrants), str(tmp_path / "runs"),
                               str(epochs)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        run_dir = Path(driver.stdout.readline().strip())
        assert run_dir.is_dir(), driver.communicate(timeout=5)
        status = runs.read_status(run_dir)
        assert status["cpus"] == 1 and status["driver_pid"] != driver.pid   # owned by the actor, not the driver
        wait_for(run_dir, lambda s: (s.get("epochs_done") or 0) >= 1, "one epoch in", timeout=TIMEOUT)
    finally:
        driver.kill()
        driver.wait()
    done = wait_for(run_dir, lambda s: s.get("state") not in runs.ACTIVE_STATES, "ended", timeout=TIMEOUT)
    assert done["state"] == "finished", (run_dir / "log.txt").read_text()[-3000:]
    assert runs.read_metrics(run_dir)["epoch"].tolist() == list(range(1, epochs + 1))   # every epoch once


def test_cpus_per_run_is_checked_against_the_nodes(two_nodes, quadrants, tmp_path):
    from noisycore import fanout

    sim, _, ex = two_nodes
    assert ex.cpus_per_run(1) == 1 and ex.cpus_per_run("1") == 1
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(UserError, match="whole number of at least 1"):
            ex.cpus_per_run(bad)
    with pytest.raises(UserError, match=r"CPUs per run 2 is more than the largest node of the cluster has \(1\)"):
        ex.cpus_per_run(2)
    spec = sweeps.SweepSpec(base=tiny_config(quadrants), noise="symmetric", rates=(0.0,), losses=("ce",))
    with pytest.raises(UserError, match="CPUs per run 3 is more than"):   # the app's sweep: refused before it starts
        fanout.start_sweep(spec, root=tmp_path / "runs", name="big", cluster=sim.address, cpus=3)
    assert not (tmp_path / "runs").exists()


def test_the_apps_sweep_and_cross_validation_fan_out_and_outlive_their_follower(two_nodes, quadrants, tmp_path):
    """The app's starters with a cluster: a detached follower process submits every cell / fold as a job
    and combines the folds. Killed mid-sweep, its cells go on; Resume follows them (none trained again)."""
    import signal

    from noisycore import crossval, fanout

    sim, _, _ = two_nodes
    epochs = 30
    spec = sweeps.SweepSpec(base=tiny_config(quadrants, epochs=epochs), noise="symmetric", rates=(0.0, 0.2),
                            losses=("ce",))
    sweep_dir = fanout.start_sweep(spec, root=tmp_path / "runs", name="app", cluster=sim.address, cpus=1)
    cells = [sweep_dir / c.name for c in sweeps.cells(spec)]
    for cell in cells:
        wait_for(cell, lambda s: (s.get("epochs_done") or 0) >= 1, "one epoch in", timeout=TIMEOUT)
    submitted = [runs.read_status(c)["submitted"] for c in cells]
    os.kill(sweeps.sweep_status(sweep_dir)["pid"], signal.SIGKILL)        # the follower dies; its jobs do not
    deadline = time.monotonic() + 30
    while sweeps.sweep_status(sweep_dir)["active"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [jobs.poll(c)["state"] for c in cells] == ["running"] * 2
    fanout.resume_sweep(sweep_dir, cluster=sim.address, cpus=1)           # the page's Resume: a new follower
    deadline = time.monotonic() + TIMEOUT
    while sweeps.sweep_status(sweep_dir)["state"] != "finished" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sweeps.sweep_status(sweep_dir)["state"] == "finished", (sweep_dir / "log.txt").read_text()[-3000:]
    assert [runs.read_status(c)["submitted"] for c in cells] == submitted          # followed, not trained again
    for cell in cells:
        assert runs.read_metrics(cell)["epoch"].tolist() == list(range(1, epochs + 1))
    assert len({node_of(runs.read_status(c)) for c in cells}) == 2

    fanout.start_cross_validation(cells[0], folds=2, cluster=sim.address, cpus=1)    # Review's K-fold button
    deadline = time.monotonic() + TIMEOUT
    while crossval.poll(cells[0]).get("state") in runs.ACTIVE_STATES and time.monotonic() < deadline:
        time.sleep(0.5)
    status = crossval.poll(cells[0])
    assert status["state"] == "finished", (cells[0] / "cv" / "log.txt").read_text()[-3000:]
    assert status["executor"] == "ray" and crossval.progress(status) == (1.0, "2 of 2 folds done, 0 training, "
                                                                                "0 queued on the cluster")
    folds = sorted((cells[0] / "cv").glob("k2-fold*/run"))
    assert [runs.read_status(f)["executor"] for f in folds] == ["ray", "ray"]
    probs = np.load(cells[0] / "cv_probs.npy")
    assert probs.shape == (len(np.load(cells[0] / "predictions.npz")["train_ids"]), 4)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_stop_of_the_apps_cluster_sweep_stops_its_cells(two_nodes, quadrants, tmp_path):
    """The Curves page's Stop on a cluster sweep: the follower sees the stop request and stops every cell."""
    from noisycore import fanout

    sim, _, _ = two_nodes
    spec = sweeps.SweepSpec(base=tiny_config(quadrants, epochs=500), noise="symmetric", rates=(0.0, 0.2),
                            losses=("ce",))
    sweep_dir = fanout.start_sweep(spec, root=tmp_path / "runs", name="stop", cluster=sim.address)
    cells = [sweep_dir / c.name for c in sweeps.cells(spec)]
    for cell in cells:
        wait_for(cell, lambda s: (s.get("epochs_done") or 0) >= 1, "one epoch in", timeout=TIMEOUT)
    sweeps.stop_sweep(sweep_dir)
    deadline = time.monotonic() + 60
    while sweeps.sweep_status(sweep_dir)["active"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sweeps.sweep_status(sweep_dir)["state"] == "stopped", (sweep_dir / "log.txt").read_text()[-3000:]
    assert [runs.read_status(c)["state"] for c in cells] == ["stopped"] * 2
    assert all(1 <= len(runs.read_metrics(c)) < 500 for c in cells)
