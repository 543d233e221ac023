"""A new challenge folder: the commented challenge.yaml (named after the folder unless told otherwise),
the four location folders, the example drops."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from pathlib import Path

from challenge.core.errors import ConfigError

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "example_drops"  # package data: installed with the package

EXAMPLE_CONFIG = """\
# challenge.yaml: the organizer's configuration (every key is explained in the README).
# Relative paths are resolved against this file's folder; any location may
# instead be an S3 URI such as s3://my-bucket/challenge/intake.
name: {name}{name_pad}# short id: lowercase letters, digits, dashes
title: {title}

storage:
  intake: intake                  # contributors' drops: <contributor>/<task_id>/task.yaml + data
  public: public                  # releases and leaderboards (participants read this)
  private: private                # answer keys, reports, staged data (never public)
  submissions: submissions        # participants' uploads: <team>/<task_id>/<file>.csv
  public_url: null                # https address where `public` is served (e.g. a static website of the
                                  # bucket); the Prefect UI then links to the leaderboard page and the cards
  s3:
    endpoint_url: null            # e.g. http://127.0.0.1:9000 for an S3-compatible server
    region: null

policy:
  max_submissions_per_day: 5      # per team, per task, per UTC day
  max_submission_mb: 50
  opens_at: null                  # ISO 8601 UTC, e.g. 2026-12-01T00:00:00Z
  closes_at: null
  public_fraction: 0.3            # share of each test set scored on the public leaderboard
  final_picks: 2                  # submissions per task a team may name in its FINAL file
  after_close: reject             # or benchmark: later uploads are scored on a post-challenge board

release:                          # leak limits checked when publishing (fractions of test rows)
  max_duplicate_fraction: 0.01    # test rows whose features all equal a train row's
  max_text_duplicate_fraction: 0.05  # test records that nearly repeat a train record (all text columns
                                  # together plus the other features), or repeat an identifying column
  near_duplicate_similarity: 0.8  # token (Jaccard) similarity from which a record nearly repeats another

intake:                           # what gating one drop may cost; a drop over a bound fails alone
  max_seconds_per_drop: 1800      # the gate of a drop is stopped after this (its report says where)
  max_columns: 1000               # columns of one data file (only the declared ones are decoded)
  max_value_kb: 1024              # one text value
  max_table_mb: 4096              # one data file once decoded

algorithms:                       # one run of a team's algorithm in its sandbox (docs/contract.md)
  max_seconds: 900                # wall clock; then it is stopped (status timeout)
  max_cpu_seconds: 1800
  max_memory_mb: 4096             # per process (status out of memory)
  max_processes: 64
  max_output_mb: 100              # any file it writes, and its /tmp
  threads: 2                      # OMP/BLAS threads it is told it has
  max_archive_mb: 20              # the uploaded <name>.zip
  max_unpacked_mb: 100
  max_files: 1000
  max_per_day: 3                  # algorithm versions per team per UTC day

owners: {{}}                        # task id: contributor folder, e.g. {{penguins: penguin-lab}}; else the
                                  # contributor that first staged a task id owns it

withdrawn: {{}}                     # task id: reason, e.g. {{penguins: "labels under review"}}; leaves the
                                  # next release and the boards, the reason shown on the page

teams:
  - id: team-a
    name: Team A
    members: [alice@example.com]
  - id: team-b
    name: Team B
    members: [bob@example.com]
"""


NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")  # challenge.yaml's `name` (challenge/core/config.py)
FALLBACK_NAME = "my-challenge"


def _ascii_words(text: str) -> list[str]:
    """The letters and digits of `text` as ASCII words (accents dropped: `Défi` → `Defi`)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.findall(r"[A-Za-z0-9]+", plain)


def name_for(folder: Path) -> str:
    """A valid challenge name from the folder's name: lowercase words joined by dashes, at most 63
    characters (`My Challenge_2026` → `my-challenge-2026`); `my-challenge` when no word is left, and a
    single character gets `-challenge` after it."""
    slug = "-".join(_ascii_words(folder.resolve().name)).lower()[:63].strip("-")
    if not slug:
        return FALLBACK_NAME
    return slug if NAME.match(slug) else f"{slug}-challenge"


def title_for(folder: Path) -> str:
    """A title from the folder's name: its words (accents kept), the first capitalized (`my_challenge-2026` →
    `My challenge 2026`); `My challenge` when no word is left."""
    words = " ".join(re.findall(r"[^\W_]+", folder.resolve().name))[:120].strip()
    return words[:1].upper() + words[1:] if words else "My challenge"


def init_challenge(folder: Path, name: str | None = None, title: str | None = None,
                   with_examples: bool = False) -> Path:
    """Write challenge.yaml (local storage under `folder`) and the four location folders; with
    `with_examples`, copy the bundled example drops into intake. The name and title default to ones made
    from the folder's name (name_for, title_for); a `name` that challenge.yaml would refuse is refused here."""
    name = name_for(folder) if name is None else name
    if not NAME.match(name):
        raise ConfigError(f"--name {name!r}: a challenge name is 2 to 63 lowercase letters, digits and dashes, "
                          "starting with a letter or digit (e.g. my-challenge)")
    title = title_for(folder) if title is None else title
    if not title.strip() or any(not c.isprintable() for c in title):
        raise ConfigError(f"--title {title!r}: give a title of printable characters, e.g. \"My challenge\"")
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "challenge.yaml"
    config_path.write_text(EXAMPLE_CONFIG.format(name=name, name_pad=" " * max(1, 28 - len(name)),
                                                 title=json.dumps(title, ensure_ascii=False)),  # a quoted YAML scalar
                           encoding="utf-8")
    for location in ("intake", "public", "private", "submissions"):
        (folder / location).mkdir(exist_ok=True)
    if with_examples:
        shutil.copytree(EXAMPLES_DIR, folder / "intake", dirs_exist_ok=True)
    return config_path
