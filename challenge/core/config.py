"""challenge.yaml: the organizer's configuration (SPEC §4)."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from challenge.core.errors import ConfigError
from challenge.core.task_spec import TASK_ID_PATTERN
from challenge.core.yamlfile import load_model

CONFIG_ENV = "CHALLENGE_CONFIG"
DEFAULT_CONFIG = "challenge.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def location_uri(value: str, info: ValidationInfo) -> str:
    """A storage location as written in a YAML file: an s3://bucket/prefix URI, or a local folder made
    absolute against the folder of that file (the validation context's `base_dir`)."""
    if not value.strip():
        raise ValueError("must be a local folder or an s3://bucket/prefix URI")
    if value.startswith("s3://"):
        if len(value) <= len("s3://") or value[5] == "/":
            raise ValueError("an S3 URI needs a bucket: s3://bucket/prefix")
        return value.rstrip("/")
    if "://" in value:
        raise ValueError("only local folders and s3:// URIs are supported")
    base = Path((info.context or {}).get("base_dir", "."))
    return str((base / value).resolve())


class S3Settings(Strict):
    endpoint_url: str | None = None
    region: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def http_address(cls, value: str | None) -> str | None:
        """The S3 API's address: http(s)://host[:port][/path], checked here rather than on the first request."""
        if value is None:
            return None
        parts = urlsplit(value.strip())
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            parts = parts._replace(netloc="")
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in value.strip():
            raise ValueError("must be the http(s) address of the S3 API, e.g. http://localhost:9000 or "
                             "https://s3.eu-west-1.amazonaws.com (leave it out for AWS)")
        return value.strip()


class StorageSettings(Strict):
    intake: str
    public: str
    private: str
    submissions: str
    public_url: str | None = None  # where `public` is served to browsers, e.g. https://challenge.example.com
    s3: S3Settings = S3Settings()

    @field_validator("public_url")
    @classmethod
    def web_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")) or len(value.split("://", 1)[1].strip("/")) == 0:
            raise ValueError("must be the http(s) address where the public location is served, "
                             "e.g. https://challenge.example.com/public")
        return value.rstrip("/")

    @field_validator("intake", "public", "private", "submissions")
    @classmethod
    def resolve_local(cls, value: str, info: ValidationInfo) -> str:
        return location_uri(value, info)

    @model_validator(mode="after")
    def distinct_locations(self) -> "StorageSettings":
        uris = [self.intake, self.public, self.private, self.submissions]
        if len(set(uris)) != len(uris):
            raise ValueError("intake, public, private and submissions must be four different locations")
        for name in ("intake", "public", "submissions"):
            other = getattr(self, name)
            if other.startswith(self.private + "/") or self.private.startswith(other + "/"):
                raise ValueError(f"private must not be inside {name} (or contain it): participants could read it")
        return self


class Policy(Strict):
    max_submissions_per_day: int = Field(5, ge=1)
    max_submission_mb: float = Field(50, gt=0)
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    public_fraction: float = Field(0.3, gt=0, lt=1)
    final_picks: int = Field(2, ge=1, le=20)  # submissions per task a team may name in FINAL
    after_close: Literal["reject", "benchmark"] = "reject"  # benchmark: later uploads go to a post-challenge board

    @field_validator("opens_at", "closes_at")
    @classmethod
    def utc_unless_zoned(cls, value: datetime | None) -> datetime | None:
        """A time written without a zone is UTC (upload times are compared with it)."""
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def window_is_ordered(self) -> "Policy":
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            raise ValueError("closes_at must be after opens_at")
        return self


class ReleaseSettings(Strict):
    """Release-time leak limits, as fractions of a task's test rows (tasks/release/leaks/checks.py).

    max_duplicate_fraction: test rows whose features all equal a train row's.
    max_text_duplicate_fraction: test records that nearly repeat a train record (token similarity at
    least near_duplicate_similarity), or repeat a train row's value in a column marked identifying.
    """

    max_duplicate_fraction: float = Field(0.01, ge=0, le=1)
    max_text_duplicate_fraction: float = Field(0.05, ge=0, le=1)
    near_duplicate_similarity: float = Field(0.8, gt=0, le=1)


class IntakeSettings(Strict):
    """Bounds on the work one contributor's drop may cause (tasks/intake/read_tables.py, tasks/intake/gate_process.py): the
    gate of a drop that takes longer than max_seconds_per_drop is stopped (its report says so); a data file
    with more columns, a longer value or a larger decoded size than these is refused before it is decoded.
    parallel_drops: drops gated at once (default: one per core)."""

    max_seconds_per_drop: float = Field(1800, gt=0)
    max_columns: int = Field(1000, ge=1)
    max_value_kb: float = Field(1024, gt=0)
    max_table_mb: float = Field(4096, gt=0)
    parallel_drops: int | None = Field(None, ge=1)


class AlgorithmSettings(Strict):
    """Bounds on one run of a team's algorithm in its sandbox (tasks/algorithms/sandbox.py) and on the archive it
    comes in (tasks/algorithms/archive.py). A run over max_seconds (wall clock) or max_cpu_seconds is stopped;
    each of its processes may map max_memory_mb; it may have max_processes processes at once and write no file
    over max_output_mb. Each run's task.json shows the bounds it ran under."""

    max_seconds: float = Field(900, gt=0)
    max_cpu_seconds: float = Field(1800, gt=0)
    max_memory_mb: float = Field(4096, ge=256)
    max_processes: int = Field(64, ge=4)
    max_output_mb: float = Field(100, gt=0)
    threads: int = Field(2, ge=1, le=64)  # OMP/BLAS threads the algorithm is told it has
    max_archive_mb: float = Field(20, gt=0)
    max_unpacked_mb: float = Field(100, gt=0)
    max_files: int = Field(1000, ge=1)
    max_per_day: int = Field(3, ge=1)  # algorithm versions per team per UTC day


class Team(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str
    members: list[str] = []

    @field_validator("name")
    @classmethod
    def shown_name(cls, value: str) -> str:
        """The name the leaderboard shows: not blank, one line."""
        if not value.strip():
            raise ValueError("the team's display name is empty: give the name the leaderboard shows")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("the team's display name holds a line break or a control character: write it on one line")
        return value


class ChallengeConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    title: str
    storage: StorageSettings
    policy: Policy = Policy()
    release: ReleaseSettings = ReleaseSettings()
    teams: list[Team] = []
    withdrawn: dict[str, str] = {}  # task id → why it is withdrawn (left out of the next release and the boards)
    intake: IntakeSettings = IntakeSettings()
    algorithms: AlgorithmSettings = AlgorithmSettings()
    owners: dict[str, str] = {}  # task id → the contributor (intake folder) it belongs to, whoever staged it first

    @field_validator("owners")
    @classmethod
    def owner_names(cls, owners: dict[str, str]) -> dict[str, str]:
        for task_id, contributor in owners.items():
            if not re.match(TASK_ID_PATTERN, task_id):
                raise ValueError(f"{task_id!r} is not a task id (lowercase letters, digits and dashes, 2 to 63)")
            if not re.fullmatch(r"[^/\x00-\x1f\x7f]{1,100}", contributor) or contributor in (".", ".."):
                raise ValueError(f"{task_id}: {contributor!r} is not a contributor folder name (the folder under "
                                 "intake that holds the contributor's drops)")
        return owners

    @field_validator("withdrawn")
    @classmethod
    def withdrawal_reasons(cls, withdrawn: dict[str, str]) -> dict[str, str]:
        for task_id, reason in withdrawn.items():
            if not reason or not reason.strip():
                raise ValueError(f"{task_id}: give the reason the task is withdrawn (it is shown on the leaderboard page)")
            if len(reason) > 500:
                raise ValueError(f"{task_id}: the reason is {len(reason)} characters; keep it under 500")
        return withdrawn

    @field_validator("teams")
    @classmethod
    def unique_team_ids(cls, teams: list[Team]) -> list[Team]:
        seen: set[str] = set()
        for team in teams:
            if team.id == "baseline":  # tasks.submissions.BASELINE_TEAM: the organizers' reference submissions
                raise ValueError("team id 'baseline' is reserved for the organizers' baseline submissions; "
                                 "choose another id")
            if team.id in seen:
                raise ValueError(f"team id {team.id!r} is listed twice")
            seen.add(team.id)
        return teams


def public_web_address(config: ChallengeConfig, key: str) -> str | None:
    """The browser address of a public object, when challenge.yaml says where `public` is served."""
    return f"{config.storage.public_url}/{key}" if config.storage.public_url else None


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $CHALLENGE_CONFIG, else ./challenge.yaml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return Path(DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> ChallengeConfig:
    """Load and validate challenge.yaml; errors name the file and the key."""
    config_path = find_config_path(path)
    if not config_path.exists():
        raise ConfigError(
            f"{config_path}: challenge.yaml not found; pass --config, set {CONFIG_ENV}, "
            "or create one with `challenge init DIR`"
        )
    return load_model(ChallengeConfig, config_path, {"base_dir": config_path.resolve().parent})


def write_config(config: ChallengeConfig, path: str | os.PathLike[str]) -> Path:
    """Write `config` as challenge.yaml (locations are absolute, so it loads the same from anywhere)."""
    import yaml

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True), sort_keys=False),
                      encoding="utf-8")
    return target
