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
