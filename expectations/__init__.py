"""Quality rules: GX suites per kind (YAML files here) and the custom checks GX has no expectation for."""

from pathlib import Path

SUITES_DIR = Path(__file__).parent
