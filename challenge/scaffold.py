"""A new challenge folder: the commented challenge.yaml, the four location folders, the example drops."""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent / "example_drops"  # package data: installed with the package

EXAMPLE_CONFIG = """\
# challenge.yaml: the organizer's configuration (every key is explained in the README).
# Relative paths are resolved against this file's folder; any location may
# instead be an S3 URI such as s3://my-bucket/challenge/intake.
name: {name}                      # short id: lowercase letters, digits, dashes
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


def init_challenge(folder: Path, name: str = "demo-challenge", title: str = "Demo challenge",
                   with_examples: bool = False) -> Path:
    """Write challenge.yaml (local storage under `folder`) and the four location folders; with
    `with_examples`, copy the bundled example drops into intake."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "challenge.yaml"
    config_path.write_text(EXAMPLE_CONFIG.format(name=name, title=title), encoding="utf-8")
    for location in ("intake", "public", "private", "submissions"):
        (folder / location).mkdir(exist_ok=True)
    if with_examples:
        shutil.copytree(EXAMPLES_DIR, folder / "intake", dirs_exist_ok=True)
    return config_path
