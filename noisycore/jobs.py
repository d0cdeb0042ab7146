"""Start, poll and stop training runs as detached background processes.

    run_dir = start(config)        # creates the run folder (queued) and spawns
                                   #   python -m noisycore.jobs worker RUN_DIR   (output -> RUN_DIR/log.txt)
    poll(run_dir)                  # status dict; a dead worker of a live-looking run is marked failed
    stop(run_dir)                  # RUN_DIR/stop.request: ends within one batch, keeps the partial run

Queue: any number of runs can be queued; by default ONE trains at a time. A worker waits (polling
every 0.5 s) until no older queued run is waiting (first come, first served) and it holds a slot
lock ``<root>/.train.lock`` (``.train.lock.1`` ... for ``max_parallel`` > 1). The lock is an OS
file lock (``fcntl.flock`` on Linux / macOS, ``msvcrt.locking`` on Windows), which the OS releases
when the holder exits, even by kill -9, so a crashed run never blocks the queue and there is no
stale lock file to clean up.

Where the worker runs: status.json records ``host`` and ``node`` (the machine, and the Ray node when an
executor placed it there: noisycore.executors) and a ``heartbeat`` (epoch seconds, every
HEARTBEAT_SECONDS). "Is the worker alive" uses the pid only on the same host, the heartbeat elsewhere;
a run whose executor knows better (Ray retries a task after its node died) answers through LIVENESS.
A worker that starts on another node than the run's last one appends to ``moves`` (from, to, epoch, at).

Signals: SIGTERM to a worker stops the run like a stop request (state "stopped"). On Windows there
is no SIGTERM to catch (``TerminateProcess`` is a hard kill: the run is marked failed on the next
poll), so use ``stop()``; workers there start in a new process group, detached from the console.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from noisycore import runs, workspaces
from noisycore.config import TrainConfig, default_runs_dir
from noisycore.errors import UserError

LOCK_NAME = ".train.lock"
WAIT_SECONDS = 0.5            # how often a queued worker checks whether it may start
MAX_PARALLEL = 16
DEAD_WORKER_ERROR = "the training process ended unexpectedly (killed?)"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]   # the folder holding the noisycore package
HEARTBEAT_SECONDS = 5.0       # a worker writes status.json's heartbeat this often
HEARTBEAT_TIMEOUT = 60.0      # a worker on another host is dead after this long without a heartbeat
NODE_ENV = "NOISYLAB_NODE"    # set by an executor: the node a worker runs on (default: this host)
THREADS_ENV = "NOISYLAB_THREADS"   # set by an executor: TensorFlow's thread pools = the CPUs reserved
LIVENESS: dict = {}           # status["executor"] -> fn(run_dir, status) -> True / False / None (don't know)

_CHILDREN: dict = {}          # pid -> Popen of workers started by this process (reaped by poll)
TERM = threading.Event()      # SIGTERM received by this worker process (a run, a cross-validation, a sweep)


# ------------------------------------------------------------------------------ processes
def pid_alive(pid) -> bool:
    """Whether process ``pid`` is running (a zombie or a reaped child counts as dead)."""
    if not pid:
        return False
    pid = int(pid)
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)   # reaped: forget it
        return False
    if os.name == "nt":
        return _windows_pid_alive(pid)
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:   # our own child that already exited
            return False
    except (ChildProcessError, OSError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a zombie (exited, not yet reaped by its parent) is dead for us
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    try:
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def host_name() -> str:
    return socket.gethostname()


def worker_alive(run_dir: Path, status: dict) -> bool:
    """Whether the worker of a queued / running run is alive: its executor's answer if it has one, else
    the pid on this host and the heartbeat on another; a run Ray holds in its queue has no worker yet."""
    hook = LIVENESS.get(status.get("executor"))
    answer = hook(run_dir, status) if hook is not None else None
    if answer is not None:
        return answer
    if status.get("executor") == "ray" and not status.get("heartbeat"):
        # queued in the cluster (no worker yet): alive while the process that submitted it is
        same = status.get("driver_host") in (None, host_name())
        return pid_alive(status.get("driver_pid")) if same and status.get("driver_pid") else True
    if status.get("host") not in (None, host_name()) or status.get("executor") == "ray":
        return time.time() - float(status.get("heartbeat") or 0) < HEARTBEAT_TIMEOUT
    pid = _worker_pid(run_dir, status)
    return pid is None or pid_alive(pid)


def _worker_pid(run_dir: Path, status: dict) -> Optional[int]:
    pid = status.get("pid")
    if pid:
        return int(pid)
    try:
        return int((run_dir / "worker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------ slot locks
class SlotLock:
    """A held OS lock on one slot file; ``release()`` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd is None:
            return
        if os.name == "nt":
            import msvcrt

            try:
                os.lseek(self.fd, 0, os.SEEK_SET)
                msvcrt.locking(self.fd, msvcrt.LK_UNLCK, 1)
            except OSError:
                pass
        os.close(self.fd)  # closing also drops a flock
        self.fd = None


def try_lock(path: Path) -> Optional[SlotLock]:
    """Take the lock on ``path`` without waiting; None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return SlotLock(path, fd)


def _try_slots(root: Path, max_parallel: int) -> Optional[SlotLock]:
    for i in range(max_parallel):
        lock = try_lock(root / (LOCK_NAME if i == 0 else f"{LOCK_NAME}.{i}"))
        if lock is not None:
            return lock
    return None


def _older_run_waiting(run_dir: Path) -> bool:
    """Whether an older run in the same root is queued with a live worker (it goes first)."""
    for other in runs.run_dirs(run_dir.parent):
        if other.name >= run_dir.name:
            break
        status = runs.read_status(other)
        if status.get("state") == "queued" and not runs.stop_requested(other) \
                and pid_alive(_worker_pid(other, status)):
            return True
    return False


# ------------------------------------------------------------------------------ public API
def _check_parallel(max_parallel) -> int:
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or not 1 <= max_parallel <= MAX_PARALLEL:
        raise UserError(f"max_parallel={max_parallel!r} must be an integer in 1..{MAX_PARALLEL}")
    return max_parallel


def start(config: TrainConfig, *, root=None, name: Optional[str] = None, max_parallel: int = 1,
          owner: Optional[str] = None) -> Path:
    """Create a queued run and spawn its detached worker process; return the run folder.
    ``owner``: whose run it is (a workspace name; None: ``workspaces.default_owner()``, the CLI's rule)."""
    _check_parallel(max_parallel)
    owner = workspaces.check_name(owner) if owner is not None else workspaces.default_owner()
    run_dir = runs.create_run(config, root=Path(root).resolve() if root is not None else default_runs_dir().resolve(),
                              name=name, owner=owner)
    proc = spawn(["noisycore.jobs", "worker", str(run_dir), "--max-parallel", str(max_parallel)], run_dir / "log.txt")
    runs.atomic_write_text(run_dir / "worker.pid", str(proc.pid))
    return run_dir


def spawn(module_args: list, log_path: Path, *, detach: bool = True, die_with_parent: bool = False,
          env: Optional[dict] = None) -> subprocess.Popen:
    """Start ``python -m <module_args...>`` with its output appended to ``log_path`` and this package
    importable; ``detach``: in its own session, so Ctrl-C in the app's terminal does not kill it;
    ``die_with_parent`` (Linux): killed when this process dies (a Ray task's worker on a node that died);
    ``env``: extra environment. The child is remembered so :func:`pid_alive` can reap it. Training runs,
    cross-validation and sweeps."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    flags = {}
    if detach:
        flags = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS}
                 if os.name == "nt" else {"start_new_session": True})
    with open(log_path, "ab") as log:
        if die_with_parent and sys.platform.startswith("linux"):
            flags["preexec_fn"] = _die_with_parent
        proc = subprocess.Popen([sys.executable, "-m", *map(str, module_args)], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, close_fds=True, **flags)
    _CHILDREN[proc.pid] = proc
    return proc


def reap() -> list:
    """Collect the exit status of every finished child this process started (never blocks), so a
    finished run, cross-validation or sweep leaves no zombie process behind; returns their pids."""
    done = [pid for pid, proc in list(_CHILDREN.items()) if proc.poll() is not None]
    for pid in done:
        _CHILDREN.pop(pid, None)
    return done


def _die_with_parent() -> None:   # runs in the child between fork and exec
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def poll(run_dir) -> dict:
    """The run's status; a queued / running run whose worker is gone is marked failed first.
    Every poll also reaps finished children (:func:`reap`)."""
    reap()
    run_dir = Path(run_dir)
    status = runs.read_status(run_dir)
    if status.get("state") not in runs.ACTIVE_STATES:
        return status
    if worker_alive(run_dir, status):
        return status
    status = runs.read_status(run_dir)   # it may have written its final state just before exiting
    if status.get("state") in runs.ACTIVE_STATES:
        status = runs.update_status(run_dir, state="failed", error=DEAD_WORKER_ERROR, finished=runs.now_iso())
    return status


def stop(run_dir) -> dict:
    """Ask a queued or running run to stop (RUN_DIR/stop.request); returns the current status.

    A running run ends within one batch with state "stopped", keeping its metrics, last.keras and
    the best model's predictions; a queued run never starts.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    status = poll(run_dir)
    if status.get("state") in runs.ACTIVE_STATES:
        runs.atomic_write_text(run_dir / runs.STOP_FILE, runs.now_iso())
    return runs.read_status(run_dir)


def runs_ahead(run_dir) -> list:
    """Older runs in the same folder that are queued or running (after poll): the runs this one waits for."""
    run_dir = Path(run_dir)
    return [p for p in runs.run_dirs(run_dir.parent)
            if p.name < run_dir.name and poll(p).get("state") in runs.ACTIVE_STATES]


def progress(status: dict) -> tuple[float, Optional[float]]:
    """(share of the run done, estimated seconds left or None) from its status.json: the epoch in progress
    (1-based) and its batch; seconds left = elapsed / done - elapsed (None before the first batch)."""
    from datetime import datetime

    epochs, epoch = status.get("epochs") or 0, status.get("epoch") or 0
    batch, batches = status.get("batch") or 0, status.get("batches") or 0
    if not epochs or not epoch:
        return 0.0, None
    done = (epoch - 1 + (batch / batches if batches else 0.0)) / epochs
    left = None
    started, updated = status.get("started"), status.get("updated")
    if started and updated and 0 < done < 1:
        try:
            elapsed = (datetime.fromisoformat(updated) - datetime.fromisoformat(started)).total_seconds()
            left = max(elapsed / done - elapsed, 0.0)
        except ValueError:
            pass
    return min(max(done, 0.0), 1.0), left


ESTIMATE_FROM = 50   # finished runs (newest first) searched for a similar run's time per epoch


def expected_seconds(run_dir) -> Optional[float]:
    """How long a run that has not started will train: its epochs times the median time per epoch of the
    newest finished run in the same folder with the same images and model; None when there is none."""
    run_dir = Path(run_dir)
    try:
        config = runs.read_config(run_dir)
    except UserError:
        return None
    for other in list(reversed(runs.run_dirs(run_dir.parent)))[:ESTIMATE_FROM]:
        if other == run_dir or runs.read_status(other).get("state") != "finished":
            continue
        try:
            done = runs.read_config(other)
        except UserError:
            continue
        if done.data != config.data or done.model != config.model:
            continue
        seconds = runs.read_metrics(other).get("seconds")
        if seconds is not None and seconds.notna().any():
            return float(seconds.median()) * config.epochs
    return None


def queue_place(run_dir) -> dict:
    """Where a queued run stands: ``place`` (1 = it trains next), ``ahead`` (the older queued / running run
    folders, :func:`runs_ahead`), ``wait_seconds`` (the sum of their estimated times: what is left of a
    running one, :func:`expected_seconds` of a queued one; None when none can be estimated) and
    ``unknown`` (how many of them have no estimate, so the wait is at least ``wait_seconds``)."""
    ahead = runs_ahead(run_dir)
    total, unknown = 0.0, 0
    queued = 0
    for other in ahead:
        status = runs.read_status(other)
        if status.get("state") == "running":
            left = progress(status)[1]
        else:
            queued += 1
            left = expected_seconds(other)
        if left is None:
            unknown += 1
        else:
            total += left
    return {"place": queued + 1, "ahead": ahead, "wait_seconds": None if unknown == len(ahead) and ahead else total,
            "unknown": unknown}


def active_runs(root=None) -> list:
    """Run folders under ``root`` that are queued or running (after poll), oldest first."""
    return [p for p in runs.run_dirs(root) if poll(p).get("state") in runs.ACTIVE_STATES]


# ------------------------------------------------------------------------------ the worker
def on_sigterm(signum, frame) -> None:
    """The SIGTERM handler of every worker process: set TERM and ask a running training to stop."""
    TERM.set()
    train = sys.modules.get("noisycore.train")
    if train is not None:
        train.request_stop()


def _wait_for_slot(run_dir: Path, max_parallel: int) -> Optional[SlotLock]:
    """Block until this run may train (returns its lock) or is stopped while queued (None)."""
    while True:
        if TERM.is_set() or runs.stop_requested(run_dir):
            return None
        if not _older_run_waiting(run_dir):
            lock = _try_slots(run_dir.parent, max_parallel)
            if lock is not None:
                return lock
        time.sleep(WAIT_SECONDS)


def _where(run_dir: Path) -> None:
    """Record this worker's pid, host, node and a first heartbeat; a move to another node joins ``moves``."""
    status, node = runs.read_status(run_dir), os.environ.get(NODE_ENV) or host_name()
    moves = list(status.get("moves") or [])
    if status.get("node") and status["node"] != node:
        moves.append({"from": status["node"], "to": node, "epoch": int(status.get("epochs_done") or 0),
                      "at": runs.now_iso()})
    runs.update_status(run_dir, pid=os.getpid(), host=host_name(), node=node, heartbeat=time.time(), moves=moves)


def _heartbeat(run_dir: Path, done: threading.Event) -> None:
    while not done.wait(HEARTBEAT_SECONDS):
        runs.update_status(run_dir, heartbeat=time.time())


def _size_threads() -> None:
    """TensorFlow's thread pools = the CPUs an executor reserved for this run (before any op runs)."""
    n = int(os.environ.get(THREADS_ENV) or 0)
    if n > 0:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError:   # already initialized: keep TensorFlow's choice
            pass


def worker(run_dir, *, max_parallel: int = 1, queue: bool = True) -> int:
    """Wait for a slot (``queue``; an executor that reserved CPUs for the run does not), then train the run
    in this process, with a heartbeat in status.json. Returns the exit code."""
    run_dir = Path(run_dir).resolve()
    signal.signal(signal.SIGTERM, on_sigterm)
    _where(run_dir)
    done = threading.Event()
    threading.Thread(target=_heartbeat, args=(run_dir, done), daemon=True).start()
    try:
        return _work(run_dir, max_parallel=max_parallel, queue=queue)
    finally:
        done.set()


def _work(run_dir: Path, *, max_parallel: int, queue: bool) -> int:
    lock = _wait_for_slot(run_dir, max_parallel) if queue else SlotLock(run_dir, None)
    if lock is None:
        runs.update_status(run_dir, state="stopped", error="stopped before it started", finished=runs.now_iso())
        print("stopped while queued", flush=True)
        return 0
    try:
        print(f"training {run_dir.name} (pid {os.getpid()})", flush=True)
        try:
            config = runs.read_config(run_dir)
            from noisycore import train  # TensorFlow loads only once the run may start
            _size_threads()
        except Exception as e:
            runs.update_status(run_dir, state="failed", error=" ".join(str(e).split()), finished=runs.now_iso())
            raise
        if TERM.is_set():
            train.request_stop()
        try:
            train.run(config, run_dir, verbose=2)
        except Exception as e:
            train.print_traceback(e)
            return 1
        return 0
    finally:
        lock.release()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noisycore.jobs", description="Noisy Label Lab training worker")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="train one queued run folder (started by jobs.start)")
    w.add_argument("run_dir")
    w.add_argument("--max-parallel", type=int, default=1)
    w.add_argument("--no-queue", action="store_true", help="start at once: an executor reserved the CPUs (Ray)")
    args = parser.parse_args(argv)
    return worker(args.run_dir, max_parallel=_check_parallel(args.max_parallel), queue=not args.no_queue)


if __name__ == "__main__":
    sys.exit(main())
