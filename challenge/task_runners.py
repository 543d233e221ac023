"""Which Prefect task runner the flows use: threads (the default) or Dask.

The choice is read from the environment when the flows are imported, so a
deployment's worker, `challenge serve` and the CLI all pick it up the same way:

    CHALLENGE_TASK_RUNNER=dask                  # threads (default) | dask
    CHALLENGE_DASK_ADDRESS=tcp://sched:8786     # an existing Dask scheduler
    CHALLENGE_DASK_WORKERS=4                    # else a local cluster of N worker processes (default 2)
"""

from __future__ import annotations

import os

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from challenge.errors import ConfigError

RUNNER_ENV = "CHALLENGE_TASK_RUNNER"
DASK_ADDRESS_ENV = "CHALLENGE_DASK_ADDRESS"
DASK_WORKERS_ENV = "CHALLENGE_DASK_WORKERS"
RUNNERS = ("threads", "dask")


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


def task_runner_from_env() -> TaskRunner:
    """The task runner named by $CHALLENGE_TASK_RUNNER (threads when unset)."""
    workers = os.environ.get(DASK_WORKERS_ENV)
    if workers is not None and not workers.isdigit():
        raise ConfigError(f"{DASK_WORKERS_ENV}={workers!r}: expected a number of worker processes")
    return make_task_runner(os.environ.get(RUNNER_ENV, "threads").strip().lower() or "threads",
                            os.environ.get(DASK_ADDRESS_ENV) or None, int(workers) if workers else None)
