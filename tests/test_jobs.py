"""Background runs: start, poll, queue one at a time, stop, SIGTERM, kill -9 (real worker processes)."""
import os
import signal
import sys
import time

import pytest

from noisycore import jobs, runs
from noisycore.config import DataConfig, NoiseConfig, TrainConfig
from noisycore.errors import UserError
from helpers import quadrant_folder, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    return quadrant_folder(tmp_path_factory.mktemp("quadrants"), n_per_class=60)


def tiny_config(folder, **overrides):
    values = dict(data=DataConfig(source=str(folder), image_size=16, test_fraction=0.25),
                  noise=NoiseConfig(model="symmetric", rate=0.2, seed=1), batchnorm=False, dropout=0.0,
                  epochs=2, batch_size=16, lr_schedule="constant", early_stopping_patience=0, val_fraction=0.15)
    values.update(overrides)
    return TrainConfig(**values)


def state_is(*states):
    return lambda s: s.get("state") in states


def epochs_done(n):
    return lambda s: s.get("state") == "running" and (s.get("epochs_done") or 0) >= n


@pytest.mark.slow
def test_queue_one_at_a_time_kill9_recovery_and_stop(quadrants, tmp_path):
    root = tmp_path / "runs"
    a = jobs.start(tiny_config(quadrants, epochs=2), root=root, name="a")
    b = jobs.start(tiny_config(quadrants, epochs=200), root=root, name="b")
    c = jobs.start(tiny_config(quadrants, epochs=200), root=root, name="c")
    d = jobs.start(tiny_config(quadrants, epochs=2), root=root, name="d")
    assert jobs.poll(b)["state"] == "queued"
    wait_for(a, state_is("running", "finished"), "running")
    assert [jobs.poll(r)["state"] for r in (b, c, d)] == ["queued"] * 3
    jobs.stop(d)                                              # a queued run that is stopped never starts
    wait_for(d, state_is("stopped"), "stopped")
    assert runs.read_status(d).get("started") is None and not (d / "metrics.csv").exists()

    done = wait_for(a, state_is("finished"), "finished")     # a: start, run, finish, metrics
    assert runs.load_run(a).metrics["epoch"].tolist() == [1, 2]
    running = wait_for(b, state_is("running"), "running")
    assert running["started"] >= done["finished"]            # b started only after a ended
    assert [p.name for p in jobs.active_runs(root)] == [b.name, c.name]

    os.kill(running["pid"], signal.SIGKILL)                   # kill -9: detected on the next poll
    failed = wait_for(b, state_is("failed"), "failed")
    assert failed["error"] == jobs.DEAD_WORKER_ERROR

    wait_for(c, epochs_done(1), "one epoch in")               # the queue recovers: c starts
    jobs.stop(c)
    stopped = wait_for(c, state_is("stopped", "finished", "failed"), "stopped")
    assert stopped["state"] == "stopped", (c / "log.txt").read_text()[-2000:]
    run = runs.load_run(c)
    assert 1 <= len(run.metrics) < 200 and run.summary["state"] == "stopped"
    assert (c / "last.keras").exists() and (c / "predictions.npz").exists()
    table = runs.list_runs(root).set_index("id")
    assert table["state"].to_dict() == {a.name: "finished", b.name: "failed", c.name: "stopped", d.name: "stopped"}


@pytest.mark.slow
def test_sigterm_handler_stops_the_run_like_a_stop_request(quadrants, tmp_path):
    from noisycore import train

    config = tiny_config(quadrants, epochs=50)
    run_dir = runs.create_run(config, root=tmp_path)
    try:
        jobs.on_sigterm(signal.SIGTERM, None)                # what the worker's handler does
        summary = train.run(config, run_dir)
    finally:
        train.STOP_EVENT.clear()
        jobs.TERM.clear()
    assert summary["state"] == "stopped" == runs.read_status(run_dir)["state"]


def test_stop_and_poll_validate(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        jobs.stop(tmp_path / "missing")
    with pytest.raises(UserError, match="max_parallel=0"):
        jobs.start(TrainConfig(), root=tmp_path, max_parallel=0)
    run_dir = runs.create_run(TrainConfig(), root=tmp_path)  # queued, but no worker ever started
    runs.update_status(run_dir, pid=2**22 + 12345)            # a pid that is not running
    assert jobs.poll(run_dir)["state"] == "failed"


def test_slot_lock_is_exclusive(tmp_path):
    first = jobs.try_lock(tmp_path / ".train.lock")
    assert first is not None
    # flock locks belong to the open file: a second open in the same process conflicts too
    assert jobs.try_lock(tmp_path / ".train.lock") is None
    first.release()
    again = jobs.try_lock(tmp_path / ".train.lock")
    assert again is not None
    again.release()


def test_runs_ahead_names_only_older_active_runs(tmp_path):
    """A first run never 'waits for the run before it'; a second one names the first."""
    first = runs.create_run(TrainConfig(), root=tmp_path)
    second = runs.create_run(TrainConfig(), root=tmp_path)
    assert jobs.runs_ahead(first) == []
    assert jobs.runs_ahead(second) == [first]
    runs.update_status(first, state="finished")
    assert jobs.runs_ahead(second) == []


def _process_state(pid: int):
    """'Z' for a zombie, another letter while it runs, None once it is gone (reaped)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
@pytest.mark.parametrize("poller", ["run", "crossval"])
def test_a_finished_child_leaves_no_zombie_once_anything_is_polled(tmp_path, poller):
    """Issue 33, finding 10: a finished job's process was a zombie until the server exited, because
    poll() of a finished run returned before looking at the child. Any poll now reaps, without waiting."""
    from noisycore import crossval

    child = jobs.spawn(["this"], tmp_path / "log.txt")   # a child that prints and exits at once
    deadline = time.monotonic() + 60
    while _process_state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _process_state(child.pid) == "Z"              # exited, not yet reaped
    run_dir = tmp_path / "run"
    runs.write_status(run_dir if poller == "run" else run_dir / crossval.CV_DIR, {"state": "finished"})
    started = time.monotonic()
    (jobs.poll if poller == "run" else crossval.poll)(run_dir)
    assert time.monotonic() - started < 5
    assert _process_state(child.pid) is None
    assert child.pid not in jobs._CHILDREN
