"""One way to log from a step: `log = step_logger(__name__)` at the top of its module. Inside a Prefect flow or
task run a message goes to the run's logger (the Prefect UI shows it with the run); elsewhere (a thread of a
step's pool, a benchmark, a test calling the step) to the module's own logger. Flows and Prefect task wrappers
use `prefect.logging.get_run_logger()` directly."""

from __future__ import annotations

import logging
from typing import Any

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger


class StepLogger:
    """A logger that picks, per message, the current run's logger or the module's."""

    def __init__(self, name: str):
        self.name = name

    def target(self) -> logging.Logger | logging.LoggerAdapter:
        try:
            return get_run_logger()
        except MissingContextError:
            return logging.getLogger(self.name)

    def debug(self, message: str, *args: Any) -> None:
        self.target().debug(message, *args)

    def info(self, message: str, *args: Any) -> None:
        self.target().info(message, *args)

    def warning(self, message: str, *args: Any) -> None:
        self.target().warning(message, *args)

    def error(self, message: str, *args: Any) -> None:
        self.target().error(message, *args)


def step_logger(name: str) -> StepLogger:
    return StepLogger(name)
