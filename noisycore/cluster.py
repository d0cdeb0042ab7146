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

Who owns a job: Ray ties a task to the process that submitted it (its owner: it keeps the task's
result and retries it; when the owner dies, its tasks die with it). The app's Streamlit server is
restarted and the CLI is Ctrl-C'd, so neither submits tasks: every job is submitted by one detached
actor, :class:`JobOwner` (named ``noisylab-owner`` in the ``noisylab`` namespace, on the head node, no
CPU), which outlives the process that asked for the job, as a local run's detached worker does. Any
process connected to the cluster finds it by name to ask whether a job is alive and to cancel it.
It runs the code it was started with until the cluster stops: after updating the project, restart the
cluster (``ray stop``, ``ray start``) so a new one is made.

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


OWNER_NAME = "noisylab-owner"
WATCH_SECONDS = 1.0           # how often the owner looks for tasks that ended


class JobOwner:
    """The detached actor that submits and owns every job's task (see the module): it outlives the app or
    CLI process that asked for the job, retries the task after a lost node, and marks a run that never
    started (cancelled, or lost with every retry) when its task ends."""

    def __init__(self):
        import threading

        import ray

        self.refs: dict = {}          # run folder -> ObjectRef of its task
        self.lock = threading.Lock()
        self.task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(train_task)
        threading.Thread(target=self._watch, daemon=True).start()

    def submit(self, run_dir: str, cpus: int, cluster: str) -> None:
        runs.update_status(run_dir, executor="ray", cluster=cluster, cpus=cpus, driver_host=jobs.host_name(),
                           driver_pid=os.getpid(), heartbeat=None, submitted=runs.now_iso())
        with self.lock:
            self.refs[run_dir] = self.task.options(num_cpus=cpus).remote(run_dir, cpus)

    def alive(self, run_dir: str) -> Optional[bool]:
        """True while the run's task is queued or running, False once it ended, None for a run it never saw."""
        import ray

        with self.lock:
            ref = self.refs.get(run_dir)
        if ref is None:
            return None
        if not ray.wait([ref], timeout=0)[0]:
            return True
        self._settle(run_dir, ref)
        return False

    def cancel(self, run_dir: str) -> bool:
        """ray.cancel the run's task (queued: it never starts; running: SIGTERM to the worker, which stops
        like the stop file); whether there was one."""
        import ray

        with self.lock:
            ref = self.refs.get(run_dir)
        if ref is not None:
            ray.cancel(ref)
        return ref is not None

    def _watch(self) -> None:
        import ray

        while True:
            time.sleep(WATCH_SECONDS)
            with self.lock:
                pending = dict(self.refs)
            if not pending:
                continue
            ended, _ = ray.wait(list(pending.values()), num_returns=len(pending), timeout=0)
            for run_dir, ref in pending.items():
                if ref in ended:
                    self._settle(run_dir, ref)

    def _settle(self, run_dir: str, ref) -> None:
        """After the task ended: forget it; a run it never started (cancelled, or lost) is marked."""
        import ray

        with self.lock:
            if self.refs.get(run_dir) is ref:
                del self.refs[run_dir]
        try:
            ray.get(ref)
            return
        except ray.exceptions.TaskCancelledError:
            state, error = "stopped", "stopped before it started"
        except ray.exceptions.RayError as e:
            state, error = "failed", f"the cluster lost the run: {' '.join(str(e).split())[:200]}"
        if runs.read_status(run_dir).get("state") in runs.ACTIVE_STATES:
            runs.update_status(run_dir, state=state, error=error, finished=runs.now_iso())


class RayExecutor:
    """Jobs as Ray tasks on a running cluster (see the module)."""

    name = "ray"

    def __init__(self, address: str):
        ray = _import_ray()
        self.address = address
        if not ray.is_initialized():
            try:
                ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, include_dashboard=False,
                         logging_level="error")
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"no Ray cluster at {address!r} ({' '.join(str(e).split())[:160]}); start one "
                                "with `ray start --head` or run without --cluster / NOISYLAB_CLUSTER") from None
        self.stores: set = set()      # run stores every node was seen to share
        self._owner = None            # handle of the JobOwner actor
        self._probe = ray.remote(num_cpus=0, max_retries=0)(probe_task)
        jobs.LIVENESS["ray"] = self.alive

    def owner(self):
        """The cluster's JobOwner actor (created on first use: detached, on the head node, no CPU)."""
        import ray

        if self._owner is None:
            self._owner = ray.remote(JobOwner).options(
                name=OWNER_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached", num_cpus=0,
                resources={"node:__internal_head__": 0.001}, max_restarts=-1, max_concurrency=8).remote()
        return self._owner

    def cpus_per_run(self, cpus=None) -> int:
        """The CPUs a job reserves: ``cpus``, else env NOISYLAB_CPUS_PER_RUN, else 1; refused (UserError) when
        not a whole number of at least 1 or more than the largest node has (Ray would queue it forever)."""
        value = cpus if cpus is not None else (os.environ.get(CPUS_ENV) or 1)
        try:
            number = int(str(value).strip())
        except ValueError:
            number = 0
        if isinstance(value, bool) or number < 1 or str(number) != str(value).strip():
            raise UserError(f"CPUs per run {value!r} must be a whole number of at least 1 (--cpus-per-run, "
                            f"{CPUS_ENV} or the sidebar's setting)")
        largest = max([n["cpus"] for n in self.nodes()] or [0])
        if number > largest:
            raise UserError(f"CPUs per run {number} is more than the largest node of the cluster has ({largest:g}); "
                            f"use at most {largest:g}")
        return number

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
              owner: Optional[str] = None, cpus: Optional[int] = None) -> Path:
        """Create a queued run (after the store check) and submit it; ``max_parallel`` is the cluster's.
        ``owner``: whose run it is (None: ``workspaces.default_owner()``); ``cpus``: see cpus_per_run."""
        from noisycore import workspaces

        cpus = self.cpus_per_run(cpus)
        root = self.check_store(root if root is not None else default_runs_dir())
        owner = workspaces.check_name(owner) if owner is not None else workspaces.default_owner()
        run_dir = runs.create_run(config, root=root, name=name, owner=owner)
        self.submit(run_dir, cpus=cpus)
        return run_dir

    def submit(self, run_dir, *, cpus: Optional[int] = None) -> Path:
        """Submit an existing queued run folder (a run, a sweep cell, a fold) as a task of the JobOwner;
        status.json records ``cpus`` and the owner's host and pid (``driver_host`` / ``driver_pid``)."""
        import ray

        run_dir = Path(run_dir).absolute()
        cpus = self.cpus_per_run(cpus)
        self.check_store(run_dir.parent)
        ray.get(self.owner().submit.remote(str(run_dir), cpus, self.address))
        return run_dir

    def alive(self, run_dir, status) -> Optional[bool]:
        """jobs.LIVENESS hook: the JobOwner's answer (None when it does not know the run or cannot answer)."""
        import ray

        try:
            return ray.get(self.owner().alive.remote(str(Path(run_dir).absolute())), timeout=10)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
            return None

    def stop(self, run_dir) -> dict:
        """The stop request file (the run ends within one batch, on any node), then ray.cancel by the owner."""
        import ray

        status = jobs.stop(run_dir)
        if status.get("state") in runs.ACTIVE_STATES:
            try:
                ray.get(self.owner().cancel.remote(str(Path(run_dir).absolute())), timeout=10)
            except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
                pass   # the stop file still ends it when it starts or at its next batch
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


def connect(address: str = "auto") -> RayExecutor:
    """The executor for the cluster at ``address`` (one connection per process)."""
    if not isinstance(address, str) or not address.strip():
        raise UserError(f"cluster address {address!r} is empty; use auto or HOST:PORT")
    if address not in _CONNECTIONS:
        _CONNECTIONS[address] = RayExecutor(address)
    return _CONNECTIONS[address]


def connections() -> list:
    """The cluster connections this process made (none if it never asked for a cluster)."""
    return list(_CONNECTIONS.values())
