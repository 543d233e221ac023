"""participant.yaml: what a team's `challenge download|submit|submissions` commands need (SPEC §10).

The organizer writes one per team with `challenge iam --out DIR`, beside the team's IAM policy: the
team's id, where releases are read (`public`) and where uploads go (`submissions`), and how S3 is
reached. It holds no secret: the team's own AWS credentials come from the standard chain (or the
profile it names). Found by `--participant`, else `$CHALLENGE_PARTICIPANT`, else `./participant.yaml`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import Field, ValidationInfo, field_validator

from challenge.core.config import ChallengeConfig, S3Settings, Strict, location_uri
from challenge.core.errors import ConfigError
from challenge.core.storage import Storage, open_storage
from challenge.core.yamlfile import load_model

PARTICIPANT_ENV = "CHALLENGE_PARTICIPANT"
DEFAULT_PARTICIPANT = "participant.yaml"


class ParticipantS3(S3Settings):
    profile: str | None = None  # an AWS profile holding the team's own keys (else the standard chain)


class ParticipantConfig(Strict):
    challenge: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    title: str | None = None
    team: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    public: str  # where releases and leaderboards are read
    submissions: str  # where uploads go: <submissions>/<team>/<task>/<file>
    public_url: str | None = None  # the leaderboard's web address, when the organizer serves `public`
    s3: ParticipantS3 = ParticipantS3()

    @field_validator("public", "submissions")
    @classmethod
    def location(cls, value: str, info: ValidationInfo) -> str:
        return location_uri(value, info)

    def open(self, name: str) -> Storage:
        """The `public` or `submissions` location, with the team's credentials."""
        if self.s3.profile and getattr(self, name).startswith("s3://"):
            os.environ.setdefault("AWS_PROFILE", self.s3.profile)
        return open_storage(getattr(self, name), self.s3.endpoint_url, self.s3.region)


def find_participant_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--participant, else $CHALLENGE_PARTICIPANT, else ./participant.yaml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(PARTICIPANT_ENV) or DEFAULT_PARTICIPANT)


def load_participant(path: str | os.PathLike[str] | None = None) -> ParticipantConfig:
    """Load and validate participant.yaml; errors name the file and the key."""
    found = find_participant_path(path)
    if not found.exists():
        raise ConfigError(f"{found}: participant.yaml not found; pass --participant FILE or set {PARTICIPANT_ENV}. "
                          "Your organizer gives each team one (`challenge iam --out DIR` writes them)")
    return load_model(ParticipantConfig, found, {"base_dir": found.resolve().parent})


def participant_for(config: ChallengeConfig, team: str) -> ParticipantConfig:
    """The participant.yaml of `team` (ConfigError for a team challenge.yaml does not list)."""
    known = [t.id for t in config.teams]
    if team not in known:
        raise ConfigError(f"unknown team {team!r}; teams in challenge.yaml: {', '.join(known) or 'none'}")
    s3 = config.storage.s3
    return ParticipantConfig(challenge=config.name, title=config.title, team=team, public=config.storage.public,
                             submissions=config.storage.submissions, public_url=config.storage.public_url,
                             s3=ParticipantS3(endpoint_url=s3.endpoint_url, region=s3.region))


def participant_yaml(participant: ParticipantConfig) -> str:
    """participant.yaml's text, with a comment saying what it is for."""
    body = yaml.safe_dump(participant.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
                          sort_keys=False, allow_unicode=True)
    return (f"# participant.yaml of team {participant.team} in {participant.challenge}: used by\n"
            "#   challenge download | challenge submit FILE --task ID | challenge submissions\n"
            "# (run them in this folder, or pass --participant PATH). Your AWS credentials are your own:\n"
            "# the standard chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or s3.profile below.\n"
            + body)
