"""The Ray executor: runs, sweep cells and cross-validation folds as Ray tasks on a cluster.

    ex = connect("auto")                 # RAY_ADDRESS or the cluster `ray start` last started here
    run_dir = ex.start(config, root=runs_dir)     # probes the run store once, creates the run, submits it
    ex.submit(run_dir); ex.wait([run_dir]); ex.stop(run_dir); ex.nodes()

A job is one Ray task (``num_cpus`` = the CPUs reserved per run, ``max_retries``) that starts the same
worker command as the local queue, ``python -m noisycore.jobs worker RUN_DIR --no-queue``, in a fresh
process on the node Ray chose, with TensorFlow's thread pools sized to the reservation; the process
is killed with the task (a node that dies takes it along) and Ray retries the task on another node,
where the run resumes from its last complete epoch (noisycore.resume). Ray places, queues, retries
and cancels: there is no scheduler here. TensorFlow never loads in this (the driver's) process.

The run store is shared: run folders are the source of truth the pages read, so every node must see
the runs folder at the same path (NFS or the like); :meth:`RayExecutor.check_store` proves it with a
probe file per node and refuses a cluster that cannot, creating nothing. Ray is imported only here,
and only when a cluster is asked for.
"""
from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Optional

from noisycore import jobs, runs
from noisycore.config import default_runs_dir
from noisycore.errors import UserError

MAX_RETRIES = 3               # Ray retries a task whose worker or node died this often (not a failed run)
PROBE_SECONDS = 60.0          # how long the run-store probe waits for every node
NAMESPACE = "noisylab"
CPUS_ENV = "NOISYLAB_CPUS_PER_RUN"
_CONNECTIONS: dict = {}       # address -> RayExecutor of this process


def _import_ray():
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")   # read at import: a local Ray binds to 127.0.0.1
    try:
        import ray
    except ImportError:
        raise UserError("the Ray executor needs the ray package: pip install -r requirements.txt") from None
    return ray


def train_task(run_dir: str, cpus: int) -> int:
    """The body of a job's Ray task: the worker command in a fresh process on this node; its exit code."""
    import signal

    import ray

    node = ray.get_runtime_context().get_node_id()[:8]
    env = {jobs.NODE_ENV: f"{jobs.host_name()}/{node}", jobs.THREADS_ENV: str(cpus), "OMP_NUM_THREADS": str(cpus)}
    proc = jobs.spawn(["noisycore.jobs", "worker", run_dir, "--no-queue"], Path(run_dir) / "log.txt", detach=False,
                      die_with_parent=True, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:   # ray.cancel: stop like a stop request (the run keeps its epochs), then end
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except Exception:   # noqa: BLE001 - still there: end it
            proc.kill()
        raise


def probe_task(root: str, token_name: str, token: str, node: str) -> str:
    """Read the driver's token file in ``root`` and write this node's answer next to it (never creates
    ``root``); returns "ok" or what went wrong."""
    folder = Path(root)
    try:
        if (folder / token_name).read_text(encoding="utf-8") != token:
            return "a different file is at that path"
        (folder / f"{token_name}.{node}").write_text(token, encoding="utf-8")
    except OSError as e:
        return e.strerror or type(e).__name__
    return "ok"


class RayExecutor:
    """Jobs as Ray tasks on a running cluster (see the module)."""

    name = "ray"

    def __init__(self, address: str, *, cpus_per_run: Optional[int] = None):
        ray = _import_ray()
        self.address = address
        self.cpus = int(cpus_per_run or os.environ.get(CPUS_ENV) or 1)
        if self.cpus < 1:
            raise UserError(f"{CPUS_ENV}={self.cpus} must be at least 1")
        if not ray.is_initialized():
            try:
                ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, include_dashboard=False,
                         logging_level="error")
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"no Ray cluster at {address!r} ({' '.join(str(e).split())[:160]}); start one "
                                "with `ray start --head` or run without --cluster / NOISYLAB_CLUSTER") from None
        self.refs: dict = {}          # run folder -> ObjectRef of its task (submitted by this process)
        self.stores: set = set()      # run stores every node was seen to share
        self._task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(train_task)
        self._probe = ray.remote(num_cpus=0, max_retries=0)(probe_task)
        jobs.LIVENESS["ray"] = self.alive

    # -------------------------------------------------------------------------- the cluster
    def nodes(self) -> list:
        """The alive nodes: name, address, CPUs / GPUs in total and free now."""
        import ray
        from ray._private.state import available_resources_per_node

        try:
            free = available_resources_per_node()
        except Exception:   # noqa: BLE001 - a private API: without it the page shows totals only
            free = {}
        out = []
        for n in ray.nodes():
            if not n.get("Alive"):
                continue
            total, avail = n.get("Resources", {}), free.get(n["NodeID"], {})
            out.append({"node": n["NodeID"][:8], "address": n.get("NodeManagerAddress"),
                        "cpus": total.get("CPU", 0.0), "free_cpus": avail.get("CPU"),
                        "gpus": total.get("GPU", 0.0), "free_gpus": avail.get("GPU")})
        return out

    def check_store(self, root) -> Path:
        """Refuse (UserError, nothing left behind) unless every alive node reads and writes ``root``."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        root = Path(root).absolute()
        if str(root) in self.stores:
            return root
        made = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        name, token = f".store-probe-{secrets.token_hex(6)}", secrets.token_hex(16)
        (root / name).write_text(token, encoding="utf-8")
        try:
            ids = {n["NodeID"][:8]: n["NodeID"] for n in ray.nodes() if n.get("Alive")}
            refs = {short: self._probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(full, soft=False))
                    .remote(str(root), name, token, short) for short, full in ids.items()}
            ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_SECONDS)
            for short, ref in refs.items():
                answer = ray.get(ref) if ref in ready else f"no answer in {PROBE_SECONDS:.0f} s"
                seen = (root / f"{name}.{short}").is_file()
                if answer != "ok" or not seen:
                    raise UserError(f"node {short} of the cluster cannot use the runs folder {root} ({answer}); "
                                    "put it on a path every node mounts (NFS) and point NOISYLAB_RUNS / --out at it")
        finally:
            for p in root.glob(f"{name}*"):
                p.unlink(missing_ok=True)
            if made and not any(root.iterdir()):
                shutil.rmtree(root, ignore_errors=True)
        self.stores.add(str(root))
        return root

    # -------------------------------------------------------------------------- jobs
    def start(self, config, *, root=None, name: Optional[str] = None, max_parallel: int = 1,
              owner: Optional[str] = None) -> Path:
        """Create a queued run (after the store check) and submit it; ``max_parallel`` is the cluster's.
        ``owner``: whose run it is (None: ``workspaces.default_owner()``)."""
        from noisycore import workspaces

        root = self.check_store(root if root is not None else default_runs_dir())
        owner = workspaces.check_name(owner) if owner is not None else workspaces.default_owner()
        run_dir = runs.create_run(config, root=root, name=name, owner=owner)
        self.submit(run_dir)
        return run_dir

    def submit(self, run_dir) -> Path:
        """Submit an existing queued run folder (a run, a sweep cell, a fold) as a task."""
        run_dir = Path(run_dir).absolute()
        self.check_store(run_dir.parent)
        runs.update_status(run_dir, executor="ray", cluster=self.address, cpus=self.cpus, driver_host=jobs.host_name(),
                           driver_pid=os.getpid(), heartbeat=None, submitted=runs.now_iso())
        self.refs[str(run_dir)] = self._task.options(num_cpus=self.cpus).remote(str(run_dir), self.cpus)
        return run_dir

    def owns(self, run_dir) -> bool:
        """Whether this process submitted the run's task."""
        return str(Path(run_dir).absolute()) in self.refs

    def alive(self, run_dir, status) -> Optional[bool]:
        """jobs.LIVENESS hook: a task this process submitted is alive until Ray says it ended."""
        import ray

        ref = self.refs.get(str(Path(run_dir).absolute()))
        if ref is None:
            return None
        if not ray.wait([ref], timeout=0)[0]:
            return True
        self._settle(Path(run_dir), ref)
        return False

    def _settle(self, run_dir: Path, ref) -> None:
        """After the task ended: a run it never started (cancelled, or lost with every retry) is marked."""
        import ray

        try:
            ray.get(ref)
            return
        except ray.exceptions.TaskCancelledError:
            state, error = "stopped", "stopped before it started"
        except ray.exceptions.RayError as e:
            state, error = "failed", f"the cluster lost the run: {' '.join(str(e).split())[:200]}"
        if runs.read_status(run_dir).get("state") in runs.ACTIVE_STATES:
            runs.update_status(run_dir, state=state, error=error, finished=runs.now_iso())

    def stop(self, run_dir) -> dict:
        """The stop request file (the run ends within one batch, on any node), then ray.cancel."""
        import ray

        status = jobs.stop(run_dir)
        ref = self.refs.get(str(Path(run_dir).absolute()))
        if ref is not None and status.get("state") in runs.ACTIVE_STATES:
            ray.cancel(ref)   # queued: it never starts; running: SIGTERM to the worker, which stops like the file
        return jobs.poll(run_dir)

    def wait(self, run_dirs, *, timeout: Optional[float] = None) -> list:
        """Block until every run in ``run_dirs`` ended (or ``timeout`` s); returns the ones that ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = [Path(p) for p in run_dirs]
        while pending and (deadline is None or time.monotonic() < deadline):
            pending = [p for p in pending if jobs.poll(p).get("state") in runs.ACTIVE_STATES]
            if pending:
                time.sleep(0.5)
        return [Path(p) for p in run_dirs if Path(p) not in pending]

    def place_in_queue(self, run_dir) -> Optional[int]:
        """1 + the older runs of the same folder still waiting in the cluster's queue, or None if not queued."""
        run_dir = Path(run_dir)
        if jobs.poll(run_dir).get("state") != "queued":
            return None
        older = [p for p in runs.run_dirs(run_dir.parent) if p.name < run_dir.name
                 and (s := runs.read_status(p)).get("state") == "queued" and s.get("executor") == "ray"]
        return len(older) + 1


def connect(address: str = "auto", *, cpus_per_run: Optional[int] = None) -> RayExecutor:
    """The executor for the cluster at ``address`` (one connection per process)."""
    if not isinstance(address, str) or not address.strip():
        raise UserError(f"cluster address {address!r} is empty; use auto or HOST:PORT")
    if address not in _CONNECTIONS:
        _CONNECTIONS[address] = RayExecutor(address, cpus_per_run=cpus_per_run)
    return _CONNECTIONS[address]


def connections() -> list:
    """The cluster connections this process made (none if it never asked for a cluster)."""
    return list(_CONNECTIONS.values())
