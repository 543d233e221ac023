"""challenge: run a multi-team ML challenge on multimodal tabular data with Prefect."""

__version__ = "0.1.0"
