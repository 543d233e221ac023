"""Which Prefect task runner the flows use: threads (the default) or Dask.

The CLI's `--task-runner` applies its choice to each flow it calls (`on_runner`,
Prefect's `Flow.with_options`). A deployment's worker has no command line: its
flow runs take the runner from the environment, read when the flows are imported:

    CHALLENGE_TASK_RUNNER=dask                  # threads (default) | dask
    CHALLENGE_DASK_ADDRESS=tcp://sched:8786     # an existing Dask scheduler
    CHALLENGE_DASK_WORKERS=4                    # else a local cluster of N worker processes (default 2)
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from challenge.errors import ConfigError

RUNNER_ENV = "CHALLENGE_TASK_RUNNER"
DASK_ADDRESS_ENV = "CHALLENGE_DASK_ADDRESS"
DASK_WORKERS_ENV = "CHALLENGE_DASK_WORKERS"
RUNNERS = ("threads", "dask")
F = TypeVar("F", bound=Any)  # a Prefect flow


def make_task_runner(kind: str = "threads", address: str | None = None, workers: int | None = None) -> TaskRunner:
    """Threads, or `prefect-dask`'s DaskTaskRunner on `address` or on a new local cluster of `workers` processes."""
    if kind == "threads":
        return ThreadPoolTaskRunner()
    if kind != "dask":
        raise ConfigError(f"{RUNNER_ENV}={kind!r}: unknown task runner; use one of {', '.join(RUNNERS)}")
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(f"{RUNNER_ENV}=dask needs prefect-dask: pip install 'challenge[dask]'") from None
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": workers or 2, "processes": True, "dashboard_address": None})


def on_runner(flow: F, kind: str | None) -> F:
    """`flow` on the task runner `kind` (threads or dask); unchanged when `kind` is None."""
    return flow if kind is None else flow.with_options(task_runner=task_runner_from_env(kind))


def task_runner_from_env(kind: str | None = None) -> TaskRunner:
    """The task runner `kind`, else the one named by $CHALLENGE_TASK_RUNNER (threads when unset); a Dask
    runner's scheduler address or number of local workers comes from the environment."""
    workers = os.environ.get(DASK_WORKERS_ENV)
    if workers is not None and not workers.isdigit():
        raise ConfigError(f"{DASK_WORKERS_ENV}={workers!r}: expected a number of worker processes")
    kind = kind or os.environ.get(RUNNER_ENV, "threads").strip().lower() or "threads"
    return make_task_runner(kind,
                            os.environ.get(DASK_ADDRESS_ENV) or None, int(workers) if workers else None)
