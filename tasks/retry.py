"""When a Prefect task retries: on storage and network hiccups, never on a data problem."""

from __future__ import annotations

from typing import Any

from challenge.core.errors import ChallengeError


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """retry_condition_fn: retry anything but a ChallengeError (its message already says what to fix)."""
    try:
        state.result()
    except ChallengeError:
        return False
    except Exception:  # noqa: BLE001 (anything else may be transient)
        return True
    return False
