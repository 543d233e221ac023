"""Which Prefect task runner the flows use: threads (the default) or Dask.

The CLI's `--task-runner` applies its choice to each flow it calls (`on_runner`,
Prefect's `Flow.with_options`). A deployment's worker has no command line: its
flow runs take the runner from the environment, read when the flows are imported:

    CHALLENGE_TASK_RUNNER=dask                  # threads (default) | dask
    CHALLENGE_DASK_ADDRESS=tcp://sched:8786     # an existing Dask scheduler
    CHALLENGE_DASK_WORKERS=4                    # else a local cluster of N worker processes (default 2)
    CHALLENGE_DASK_CLUSTER_CLASS=dask_kubernetes.operator.KubeCluster   # or a cluster each flow run
    CHALLENGE_DASK_CLUSTER_KWARGS='{"n_workers": 4}'                  # starts and stops (JSON kwargs)

Workers on other machines cannot see a local folder: `warn_unseen_storage` logs a warning when a
location is one and the flow's workers run on another host (deploy/README.md, "Dask").
"""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING, Any, TypeVar

from challenge.core.config import ChallengeConfig
from challenge.core.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module before Prefect's settings are chosen (challenge.app.prefect_setup)
    from prefect.task_runners import TaskRunner

RUNNER_ENV = "CHALLENGE_TASK_RUNNER"
DASK_ADDRESS_ENV = "CHALLENGE_DASK_ADDRESS"
DASK_WORKERS_ENV = "CHALLENGE_DASK_WORKERS"
DASK_CLUSTER_CLASS_ENV = "CHALLENGE_DASK_CLUSTER_CLASS"
DASK_CLUSTER_KWARGS_ENV = "CHALLENGE_DASK_CLUSTER_KWARGS"
LOCATIONS = ("intake", "public", "private", "submissions")
RUNNERS = ("threads", "dask")
F = TypeVar("F", bound=Any)  # a Prefect flow


def make_task_runner(kind: str = "threads", address: str | None = None, workers: int | None = None,
                     cluster_class: str | None = None, cluster_kwargs: dict[str, Any] | None = None) -> TaskRunner:
    """Threads, or `prefect-dask`'s DaskTaskRunner: on the scheduler at `address`, on a cluster of
    `cluster_class` (dotted name) started with `cluster_kwargs` for each flow run, else on a new local
    cluster of `workers` processes."""
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    if kind != "dask":
        raise ConfigError(f"{RUNNER_ENV}={kind!r}: unknown task runner; use one of {', '.join(RUNNERS)}")
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(f"{RUNNER_ENV}=dask needs prefect-dask: pip install 'challenge[dask]'") from None
    if address and cluster_class:
        raise ConfigError(f"{DASK_ADDRESS_ENV} and {DASK_CLUSTER_CLASS_ENV} are both set: use the scheduler at the "
                          "address, or a cluster of that class started for each flow run, not both")
    if address:
        return DaskTaskRunner(address=address)
    if cluster_class:
        try:
            return DaskTaskRunner(cluster_class=cluster_class, cluster_kwargs=cluster_kwargs)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{DASK_CLUSTER_CLASS_ENV}={cluster_class!r}: cannot be imported ({exc}); install the "
                              "package that provides it (e.g. dask-kubernetes, coiled) and give its full dotted name, "
                              "e.g. dask_kubernetes.operator.KubeCluster") from None
        except ValueError as exc:
            raise ConfigError(f"{DASK_CLUSTER_KWARGS_ENV}: {exc}") from None
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": workers or 2, "processes": True, "dashboard_address": None})


def on_runner(flow: F, kind: str | None) -> F:
    """`flow` on the task runner `kind` (threads or dask); unchanged when `kind` is None."""
    return flow if kind is None else flow.with_options(task_runner=task_runner_from_env(kind))


def task_runner_from_env(kind: str | None = None) -> TaskRunner:
    """The task runner `kind`, else the one named by $CHALLENGE_TASK_RUNNER (threads when unset); a Dask
    runner's scheduler address, cluster class and kwargs, or number of local workers come from the environment."""
    workers = os.environ.get(DASK_WORKERS_ENV)
    if workers is not None and not workers.isdigit():
        raise ConfigError(f"{DASK_WORKERS_ENV}={workers!r}: expected a number of worker processes")
    kind = kind or os.environ.get(RUNNER_ENV, "threads").strip().lower() or "threads"
    return make_task_runner(kind, os.environ.get(DASK_ADDRESS_ENV) or None, int(workers) if workers else None,
                            os.environ.get(DASK_CLUSTER_CLASS_ENV) or None, cluster_kwargs_from_env())


def cluster_kwargs_from_env() -> dict[str, Any] | None:
    """$CHALLENGE_DASK_CLUSTER_KWARGS: a JSON object of keyword arguments for the cluster class."""
    text = os.environ.get(DASK_CLUSTER_KWARGS_ENV, "").strip()
    if not text:
        return None
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{DASK_CLUSTER_KWARGS_ENV}: not valid JSON ({exc}); give an object, "
                          'e.g. \'{"n_workers": 4}\'') from None
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{DASK_CLUSTER_KWARGS_ENV}: expected a JSON object of keyword arguments, "
                          f"got {type(kwargs).__name__}")
    return kwargs


def unseen_locations(config: ChallengeConfig, here: str, worker_hosts: set[str]) -> list[str]:
    """The challenge's local-folder locations, when a worker runs on a host other than `here` (else none)."""
    if worker_hosts <= {here}:
        return []
    return [name for name in LOCATIONS if not getattr(config.storage, name).startswith("s3://")]


def warn_unseen_storage(config: ChallengeConfig) -> list[str]:
    """In a flow on a Dask cluster that it did not start itself: warn when a location is a local folder and
    some worker runs on another host (it sees its own disk there, not this folder); returns those locations."""
    from prefect.context import FlowRunContext
    from prefect.logging import get_run_logger

    context = FlowRunContext.get()
    runner = getattr(context, "task_runner", None)
    if type(runner).__name__ != "DaskTaskRunner":
        return []
    if not runner.address and runner.cluster_class in (None, "distributed.LocalCluster", "distributed.deploy.LocalCluster"):
        return []  # a LocalCluster started by the runner itself: this machine
    if all(getattr(config.storage, name).startswith("s3://") for name in LOCATIONS):
        return []
    here, hosts = socket.gethostname(), worker_hosts(runner.client)
    unseen = unseen_locations(config, here, hosts)
    if unseen:
        get_run_logger().warning(
            "%s: local folder(s), but Dask workers run on other hosts (%s): they cannot see them unless the same "
            "folder is mounted at the same path on every worker; use s3:// locations (the deployment guide, Dask section)",
            ", ".join(f"storage.{n}={getattr(config.storage, n)}" for n in unseen), ", ".join(sorted(hosts - {here})))
    return unseen


def worker_hosts(client: Any) -> set[str]:
    """The host names of the workers connected to a Dask `client`'s scheduler now."""
    return set(client.run(socket.gethostname).values())
