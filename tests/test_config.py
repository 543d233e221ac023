"""challenge.yaml: loading, path resolution, lookup order, errors naming key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from challenge.app.cli import main
from challenge.core.config import load_config
from challenge.core.errors import ConfigError

MINIMAL = """\
name: my-challenge
title: Mine
storage:
  intake: data/intake
  public: s3://bucket/public
  private: /abs/private
  submissions: subs
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_file_folder(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "conf" / "challenge.yaml", MINIMAL))
    assert cfg.storage.intake == str((tmp_path / "conf" / "data" / "intake").resolve())
    assert cfg.storage.public == "s3://bucket/public"
    assert cfg.storage.private == "/abs/private"
    assert cfg.policy.public_fraction == 0.3 and cfg.policy.max_submissions_per_day == 5


def test_lookup_order_flag_then_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "challenge.yaml", MINIMAL.replace("my-challenge", "from-cwd"))
    env_file = write(tmp_path / "env" / "c.yaml", MINIMAL.replace("my-challenge", "from-env"))
    flag_file = write(tmp_path / "flag" / "c.yaml", MINIMAL.replace("my-challenge", "from-flag"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHALLENGE_CONFIG", raising=False)
    assert load_config().name == "from-cwd"
    monkeypatch.setenv("CHALLENGE_CONFIG", str(env_file))
    assert load_config().name == "from-env"
    assert load_config(flag_file).name == "from-flag"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + "colour: blue\n", "colour: unknown key"),
        (MINIMAL.replace("  submissions: subs\n", "  submissions: subs\n  extra: x\n"), "storage.extra: unknown key"),
        (MINIMAL + "policy:\n  public_fraction: 1.5\n", "policy.public_fraction"),
        (MINIMAL + "policy:\n  public_fraction: 0\n", "policy.public_fraction: Input should be greater than 0"),
        (MINIMAL + "policy:\n  public_fraction: 1\n", "policy.public_fraction: Input should be less than 1"),
        (MINIMAL + "release:\n  max_duplicate_fraction: -1\n", "release.max_duplicate_fraction"),
        (MINIMAL.replace("  submissions: subs\n", "  submissions: subs\n  public_url: ftp://host/x\n"),
         "storage.public_url: Value error, must be the http(s) address"),
        (MINIMAL + "release:\n  near_duplicate_similarity: 0\n", "release.near_duplicate_similarity"),
        (MINIMAL + "policy:\n  max_submissions_per_day: 0\n", "policy.max_submissions_per_day"),
        (MINIMAL + "policy:\n  opens_at: 2026-12-02T00:00:00Z\n  closes_at: 2026-12-01T00:00:00Z\n", "closes_at must be after opens_at"),
        (MINIMAL.replace("name: my-challenge\n", ""), "name: required key is missing"),
        (MINIMAL + "teams:\n  - {id: a1, name: A}\n  - {id: a1, name: B}\n", "listed twice"),
        (MINIMAL.replace("subs", "s3://bucket/public"), "four different locations"),
        (MINIMAL + "teams:\n  - {id: a1, name: ''}\n", "teams.0.name: Value error, the team's display name is empty"),
        (MINIMAL + "teams:\n  - {id: a1, name: '   '}\n", "teams.0.name: Value error, the team's display name is empty"),
        (MINIMAL + "teams:\n  - {id: a1, name: \"A\\nB\"}\n", "teams.0.name: Value error, the team's display name holds a line break"),
        (MINIMAL.replace("  submissions: subs\n", "  submissions: subs\n  s3: {endpoint_url: not a url}\n"),
         "storage.s3.endpoint_url: Value error, must be the http(s) address of the S3 API"),
        (MINIMAL.replace("  submissions: subs\n", "  submissions: subs\n  s3: {endpoint_url: 'localhost:9000'}\n"),
         "storage.s3.endpoint_url: Value error, must be the http(s) address"),
        (MINIMAL.replace("  submissions: subs\n", "  submissions: subs\n  s3: {endpoint_url: 'http://:9000'}\n"),
         "(got 'http://:9000')"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "challenge.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_missing_config_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="challenge init"):
        load_config(tmp_path / "nope.yaml")


def test_init_writes_a_valid_commented_local_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "c"), "--with-examples"]) == 0
    text = (tmp_path / "c" / "challenge.yaml").read_text()
    assert text.count("#") > 5
    cfg = load_config(tmp_path / "c" / "challenge.yaml")
    assert cfg.storage.intake == str((tmp_path / "c" / "intake").resolve())
    assert (tmp_path / "c" / "intake" / "penguin-lab" / "penguins" / "task.yaml").is_file()
    assert main(["init", str(tmp_path / "c")]) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))


@pytest.mark.parametrize(("text", "expected"), [
    (BILLION_LAUGHS, "aliases (*name) are not allowed"),
    ("name: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested more than 40 levels deep"),
    ("name: x\n# " + "padding " * 40_000 + "\n", "larger than 256 KB"),
])
def test_hostile_yaml_is_refused_quickly_and_clearly(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "challenge.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and expected in str(info.value) and len(str(info.value)) < 1000


def test_config_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "challenge.yaml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte \d+\); save it as UTF-8"):
        load_config(path)


def test_a_time_without_a_zone_is_read_as_utc() -> None:
    """`closes_at: 2026-12-01 00:00` (no zone) would make every comparison with an upload time fail: it is UTC."""
    from datetime import timezone

    from challenge.core.config import Policy

    policy = Policy.model_validate({"opens_at": "2026-11-01 08:00", "closes_at": "2026-12-01T00:00:00+01:00"})
    assert policy.opens_at.tzinfo == timezone.utc and policy.opens_at.hour == 8
    assert policy.closes_at.utcoffset().total_seconds() == 3600  # a zone given is kept


def test_a_good_endpoint_url_is_kept() -> None:
    from challenge.core.config import S3Settings

    for url in ("http://127.0.0.1:9000", "https://s3.eu-west-1.amazonaws.com", "https://minio.example.com/s3"):
        assert S3Settings(endpoint_url=url).endpoint_url == url
