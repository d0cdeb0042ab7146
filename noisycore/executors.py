"""Where a job runs: the one seam between "start a run / sweep cell / fold" and the machine(s) doing it.

    ex = executor(cluster=None)     # None: env NOISYLAB_CLUSTER, else the local queue
    run_dir = ex.start(config, root=runs_dir)    # both executors: a queued run folder, trained elsewhere
    ex.stop(run_dir); jobs.poll(run_dir)         # polling is the same for every executor

``local`` (the default) is noisycore.jobs: detached worker processes on this machine, one training at a
time (``max_parallel``); nothing to install or start, and Ray is never imported. ``ray``
(noisycore.cluster) submits the same worker command as a Ray task to a running cluster: ``auto`` (RAY_ADDRESS
or the cluster ``ray start`` last started on this machine, as Ray resolves it) or ``HOST:PORT``. A run
folder's status.json says which executor, host and node ran it; nothing else needs to know.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

from noisycore import jobs

CLUSTER_ENV = "NOISYLAB_CLUSTER"


class LocalExecutor:
    """The local queue (noisycore.jobs)."""

    name = "local"

    def start(self, config, *, root=None, name: Optional[str] = None, max_parallel: int = 1,
              owner: Optional[str] = None, cpus: Optional[int] = None) -> Path:
        """``cpus`` is a cluster's reservation per run; the local queue gives a run the whole machine."""
        return jobs.start(config, root=root, name=name, max_parallel=max_parallel, owner=owner)

    def stop(self, run_dir) -> dict:
        return jobs.stop(run_dir)

    def nodes(self) -> list:
        return [{"node": platform.node() or "this machine", "address": "local", "cpus": float(os.cpu_count() or 1),
                 "free_cpus": None, "gpus": 0.0, "free_gpus": None}]

    def place_in_queue(self, run_dir) -> Optional[int]:
        """1 + the older runs still queued or running ahead of a queued run, None when it is not queued."""
        if jobs.poll(run_dir).get("state") != "queued":
            return None
        return len(jobs.runs_ahead(run_dir)) + 1


LOCAL = LocalExecutor()


def cluster_setting(cluster: Optional[str] = None) -> Optional[str]:
    """The cluster asked for: ``cluster`` (the CLI's --cluster), else env NOISYLAB_CLUSTER; None = local."""
    value = cluster if cluster is not None else os.environ.get(CLUSTER_ENV)
    value = (value or "").strip()
    return None if value.lower() in ("", "local", "none") else value


def executor(cluster: Optional[str] = None):
    """The executor for ``cluster`` (see cluster_setting): LocalExecutor, or the Ray executor connected to it."""
    address = cluster_setting(cluster)
    if address is None:
        return LOCAL
    from noisycore.cluster import connect   # imports ray: only when a cluster is configured

    return connect(address)


def stop(run_dir) -> dict:
    """Stop a run wherever it runs: the stop request file, and for a cluster run (when this process is
    connected to a cluster) ray.cancel of its task as well."""
    status = jobs.poll(Path(run_dir)) if Path(run_dir).is_dir() else {}
    if status.get("executor") == "ray":
        from noisycore import cluster

        connected = cluster.connections()
        if connected:
            return connected[0].stop(run_dir)
    return jobs.stop(run_dir)
