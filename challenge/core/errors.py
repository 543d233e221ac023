"""Error types whose messages are written for the person who must act on them."""


class ChallengeError(Exception):
    """Base class: the message names the file/key/row and says what to do."""


class ConfigError(ChallengeError):
    """challenge.yaml or task.yaml is missing, malformed or holds an invalid value."""


class StorageError(ChallengeError):
    """A storage location or object key is invalid or an object is missing."""


class DataReadError(ChallengeError):
    """A contributor's data file cannot be read (format, quoting, encoding)."""


class BaselineError(ChallengeError):
    """A baseline cannot be made (no feature column, a bad release file); the message says why."""


class AlgorithmRefused(ChallengeError):
    """A team's algorithm archive cannot be run (unsafe or oversized entries, no main.py); the message is for
    the team and says what to change."""


class SandboxUnavailable(ChallengeError):
    """The sandbox algorithms run in is missing on this machine: nothing is run without it."""


class RunFailed(ChallengeError):
    """A flow run that did its work but must end Failed (e.g. a drop failed the gate); `result` is what it did.

    The flow returns it inside a Failed state, so Prefect's UI and automations see the failure;
    calling the flow raises it, and the CLI prints `result` before exiting non-zero.
    """

    state_name = "Failed"

    def __init__(self, message: str, result: object):
        super().__init__(message)
        self.result = result


class DropsFailed(RunFailed):
    """At least one drop failed the quality gate (or could not be gated)."""

    state_name = "DropsFailed"


class ScoringErrors(RunFailed):
    """At least one submission hit an internal error; it is retried on the next run."""

    state_name = "ScoringErrors"
