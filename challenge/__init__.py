"""challenge: run a multi-team ML challenge on multimodal tabular data with Prefect."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("challenge")  # one place: pyproject.toml
except PackageNotFoundError:  # run from a checkout that is not installed
    __version__ = "0+unknown"

from challenge.core.memory import return_freed_memory  # noqa: E402

return_freed_memory()
