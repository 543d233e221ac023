"""Least-privilege AWS IAM policies for participating teams (`challenge iam`).

A team may upload to and read its own `<submissions>/<team>/` folder (feedback
JSON is written there), read `public`, and nothing else: private and intake
are explicitly denied. Uploads are final, so there is no s3:DeleteObject.
Uploads under keys the scorer cannot use (`//`, `.` and `..` segments) are denied.

Upload times are S3's LastModified, which the team does not choose: a CopyObject
(allowed: it is a PutObject on the team's own folder) gets the time of the copy;
a multipart upload gets the time it was *started*, so a team could start one
before `closes_at` and complete it after. The scorer sees such an object only
once it is complete and judges it by that LastModified; organizers who must
close exactly remove s3:PutObject from the policies at the close (or use S3
Object Lock), and finalize scores only what was listed before the close.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from challenge.app.participant_config import participant_for, participant_yaml
from challenge.core.config import ChallengeConfig, load_config
from challenge.core.errors import ConfigError

Statement = dict[str, Any]

TEAM_OBJECT_ACTIONS = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
# Keys the scorer cannot use (an empty, '.' or '..' segment), refused at upload where IAM's wildcards can
# say so; control characters cannot be expressed in a Resource, so the scorer rejects those keys itself.
UNUSABLE_KEY_PATTERNS = ["/*", "*//*", "*/", "./*", "*/./*", "*/.", "../*", "*/../*", "*/.."]


def _split(config: ChallengeConfig, key: str) -> tuple[str, str]:
    """(bucket, prefix) of the S3 location `storage.<key>`; ConfigError when it is a local folder."""
    uri = getattr(config.storage, key)
    if not uri.startswith("s3://"):
        raise ConfigError(
            f"IAM policies need S3 locations: storage.{key} is a local folder ({uri}); use s3://bucket/prefix"
        )
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix.strip("/")


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _arn(bucket: str, key: str = "") -> str:
    return f"arn:aws:s3:::{_join(bucket, key)}"


def _list_statement(sid: str, effect: str, bucket: str, prefix: str) -> Statement:
    """ListBucket on `bucket`, limited to keys under `prefix/` (the whole bucket when `prefix` is empty)."""
    statement: Statement = {"Sid": sid, "Effect": effect, "Action": "s3:ListBucket", "Resource": _arn(bucket)}
    if prefix:
        patterns = [f"{prefix}/", f"{prefix}/*"] if effect == "Allow" else [prefix, f"{prefix}/*"]
        statement["Condition"] = {"StringLike": {"s3:prefix": patterns}}
    return statement


def _deny_statements(config: ChallengeConfig, key: str, name: str) -> list[Statement]:
    """Explicit Deny of everything under `storage.<key>` (skipped for a local folder, which S3 keys cannot reach)."""
    if not getattr(config.storage, key).startswith("s3://"):
        return []
    bucket, prefix = _split(config, key)
    if not prefix:  # the whole bucket: deny it and its objects outright
        return [{"Sid": f"Deny{name}Bucket", "Effect": "Deny", "Action": "s3:*",
                 "Resource": [_arn(bucket), _arn(bucket, "*")]}]
    return [
        {"Sid": f"Deny{name}Objects", "Effect": "Deny", "Action": "s3:*",
         "Resource": [_arn(bucket, prefix), _arn(bucket, f"{prefix}/*")]},
        _list_statement(f"DenyListing{name}", "Deny", bucket, prefix),
    ]


def _check_layout(config: ChallengeConfig) -> None:
    """Submissions and public must not overlap each other or intake/private, or a team would reach them."""
    locations = {k: getattr(config.storage, k) for k in ("intake", "public", "private", "submissions")}
    for key in ("submissions", "public"):
        for other, uri in locations.items():
            here = locations[key]
            if other != key and (uri.startswith(here + "/") or here.startswith(uri + "/")):
                raise ConfigError(
                    f"storage.{key} ({here}) and storage.{other} ({uri}) are nested; teams' access to one "
                    "would reach the other. Use separate prefixes"
                )


def _team_ids(config: ChallengeConfig) -> list[str]:
    if not config.teams:
        raise ConfigError("challenge.yaml lists no teams: add `teams: [{id, name, members}]` first")
    return [t.id for t in config.teams]


def team_policy(config: ChallengeConfig, team_id: str) -> dict[str, Any]:
    """The IAM policy document for one team (ConfigError for an unknown team or non-S3 locations)."""
    known = _team_ids(config)
    if team_id not in known:
        raise ConfigError(f"unknown team {team_id!r}; teams in challenge.yaml: {', '.join(known)}")
    sub_bucket, sub_prefix = _split(config, "submissions")
    pub_bucket, pub_prefix = _split(config, "public")
    _check_layout(config)
    team_folder = _join(sub_prefix, team_id)
    statements: list[Statement] = [
        {"Sid": "UploadAndReadOwnSubmissions", "Effect": "Allow", "Action": TEAM_OBJECT_ACTIONS,
         "Resource": _arn(sub_bucket, f"{team_folder}/*")},
        {"Sid": "DenyUnusableKeys", "Effect": "Deny", "Action": "s3:PutObject",
         "Resource": [_arn(sub_bucket, f"{team_folder}/{pattern}") for pattern in UNUSABLE_KEY_PATTERNS]},
        _list_statement("ListOwnSubmissionFolder", "Allow", sub_bucket, team_folder),
        {"Sid": "ReadPublicReleasesAndLeaderboards", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": _arn(pub_bucket, _join(pub_prefix, "*"))},
        _list_statement("ListPublic", "Allow", pub_bucket, pub_prefix),
        *_deny_statements(config, "private", "Private"),
        *_deny_statements(config, "intake", "Intake"),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def team_policies(config: ChallengeConfig, team_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """team id -> policy document, for every team (or only `team_ids`)."""
    ids = list(team_ids) if team_ids else _team_ids(config)
    return {team_id: team_policy(config, team_id) for team_id in ids}


def _on_s3(config: ChallengeConfig) -> bool:
    return config.storage.submissions.startswith("s3://") and config.storage.public.startswith("s3://")


def cmd_iam(args: argparse.Namespace) -> int:
    """Print the teams' policies as one JSON object, or write `<out>/<team>.json` and
    `<out>/<team>.participant.yaml` (what the team's `challenge download|submit|submissions` read) each.

    With local folders there is no policy to write (a folder has no access control: the embedded default
    is for one trusted machine), so only the participant files are written, and a line says why."""
    config = load_config(args.config)
    if not args.out:
        print(json.dumps(team_policies(config, args.team), indent=2))
        return 0
    out = Path(args.out)
    ids = list(args.team) if args.team else _team_ids(config)
    participants = {team_id: participant_for(config, team_id) for team_id in ids}
    policies = team_policies(config, ids) if _on_s3(config) else {}
    out.mkdir(parents=True, exist_ok=True)
    for team_id, policy in policies.items():
        path = out / f"{team_id}.json"
        path.write_text(json.dumps(policy, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    for team_id, participant in participants.items():
        path = out / f"{team_id}.participant.yaml"
        path.write_text(participant_yaml(participant), encoding="utf-8")
        print(f"wrote {path} (hand it to team {team_id} as participant.yaml)")
    if not policies:
        print("no IAM policies: submissions and public are local folders, which have no access control "
              "(one trusted machine only); use s3:// locations for real teams", file=sys.stderr)
    return 0


def add_iam_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `challenge iam` on the main parser's subcommands."""
    iam = sub.add_parser("iam", help="generate least-privilege S3 IAM policies and participant.yaml files, one per team")
    iam.add_argument("--out", metavar="DIR", help="write DIR/<team>.json and DIR/<team>.participant.yaml "
                                                  "(default: print the policies as one JSON object)")
    iam.add_argument("--team", action="append", metavar="ID", help="only this team id (repeatable)")
    iam.set_defaults(func=cmd_iam)
    return iam
