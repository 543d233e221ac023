"""The context of one run: the configuration and its storage locations, made once by a flow run (or a CLI
command) and passed down, so that no step opens a location again."""

from __future__ import annotations

import threading
from typing import Literal

from challenge.core.config import ChallengeConfig
from challenge.core.storage import Storage, open_location

LocationName = Literal["intake", "public", "private", "submissions"]


class _Location:
    """One of a run's locations, opened on first use (RunContext.location)."""

    def __set_name__(self, owner: type, name: LocationName) -> None:
        self.name: LocationName = name

    def __get__(self, run: RunContext, owner: type | None = None) -> Storage:
        return run.location(self.name)


class RunContext:
    """A run's configuration and its four locations (intake, public, private, submissions), each opened on
    first use and then kept. Pickled (to a Dask worker, a gate's process) as its configuration only: the other
    side opens its own."""

    intake = _Location()
    public = _Location()
    private = _Location()
    submissions = _Location()

    def __init__(self, config: ChallengeConfig):
        self.config = config
        self._opened: dict[str, Storage] = {}
        self._lock = threading.Lock()

    def location(self, name: LocationName) -> Storage:
        with self._lock:
            if name not in self._opened:
                self._opened[name] = open_location(self.config, name)
            return self._opened[name]

    def __reduce__(self) -> tuple[type[RunContext], tuple[ChallengeConfig]]:
        return RunContext, (self.config,)

    def __repr__(self) -> str:
        return f"RunContext({self.config.name!r})"
