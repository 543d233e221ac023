"""A participant's day one on both backends: participant.yaml from `challenge iam`, `challenge download`
(verified), `challenge submit` (checked with the scorer's own checks first), `challenge submissions`
(status, score, note, quota, final picks; `--wait`), the note kept in the record, history and board;
`<public>/challenge.json`; and the dataset card that answers a participant's questions."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pandas as pd
import pytest
from conftest import EXAMPLES, SHOTS, chromium, make_config, saved, stores
from test_iam import Moto
from test_iam import moto_iam as moto_iam  # noqa: F401 (a fixture: the IAM-enforcing moto server)
from test_publish import stage

from challenge.app import cli
from challenge.app.participant_config import load_participant
from challenge.core.config import ChallengeConfig, write_config
from challenge.flows.publish_release import publish_release
from challenge.flows.score_submissions import score_submissions
from challenge.tasks.release.challenge_info import read_challenge_info, refresh_challenge_info

pytestmark = pytest.mark.usefixtures("prefect_harness")
HOSTILE_NOTE = "tried <b>bold</b> <script>alert(1)</script> \x1b[31mred\x1b[0m"


@pytest.fixture(scope="module", params=["local", "s3"])
def released(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[ChallengeConfig, Path]:
    """penguins and digits (images) released once per backend, and team-a's participant.yaml from `challenge iam`."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    root = tmp_path_factory.mktemp(f"participant-{request.param}")
    config = make_config(request.param, root, endpoint, policy={"max_submissions_per_day": 10},
                         teams=[{"id": "team-a", "name": "Team A"}, {"id": "team-b", "name": "Team B"}])
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    stage(config, EXAMPLES / "vision-team" / "digits", "vision-team")
    publish_release(config_path=saved(config), release="r1")
    assert cli.main(["--config", saved(config), "iam", "--out", str(root / "iam")]) == 0
    return config, root / "iam" / "team-a.participant.yaml"


def run(capsys: pytest.CaptureFixture[str], participant: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main([args[0], "--participant", str(participant), *args[1:]])
    out = capsys.readouterr()
    return code, out.out, out.err


def team_keys(config: ChallengeConfig, task: str) -> list[str]:
    return sorted(i.key for i in stores(config)[2].list(f"team-a/{task}/"))


def predictions(folder: Path, task: str) -> pd.DataFrame:
    """What a pandas user does on day one: read test.csv with the defaults, predict, keep id and label."""
    test = pd.read_csv(folder / "r1" / task / "test.csv")
    train = pd.read_csv(folder / "r1" / task / "train.csv")
    return pd.DataFrame({"id": test["id"], "label": train["label"].mode()[0]})


def submit_penguins(capsys: pytest.CaptureFixture[str], participant: Path, folder: Path, name: str, *options: str) -> None:
    """Download penguins, predict the pandas way, submit the file as `name` (it must be accepted)."""
    assert run(capsys, participant, "download", "--to", str(folder), "--task", "penguins")[0] == 0
    predictions(folder, "penguins").to_csv(folder / name, index=False)
    assert run(capsys, participant, "submit", str(folder / name), "--task", "penguins", *options)[0] == 0


def test_iam_writes_a_participant_yaml_per_team(released: tuple[ChallengeConfig, Path]) -> None:
    config, participant = released
    me = load_participant(participant)
    assert (me.team, me.challenge) == ("team-a", config.name)
    assert (me.public, me.submissions) == (config.storage.public, config.storage.submissions)
    assert me.s3.endpoint_url == config.storage.s3.endpoint_url
    assert (participant.parent / "team-b.participant.yaml").is_file()
    policies = sorted(p.name for p in participant.parent.glob("*.json"))
    assert policies == ([] if config.storage.public.startswith("/") else ["team-a.json", "team-b.json"])


def test_download_verifies_every_file_and_fetches_nothing_twice(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config, participant = released
    code, out, err = run(capsys, participant, "download", "--to", str(tmp_path))
    assert code == 0, err
    public = stores(config)[0]
    for task in ("digits", "penguins"):
        manifest = json.loads(public.read_bytes(f"releases/r1/{task}/manifest.json"))
        for entry in manifest["files"]:
            local = tmp_path / "r1" / task / entry["path"]
            assert hashlib.sha256(local.read_bytes()).hexdigest() == entry["sha256"], entry["path"]
        assert (tmp_path / "r1" / task / "manifest.json").read_bytes() == public.read_bytes(f"releases/r1/{task}/manifest.json")
    assert "penguins" in out and "SHA-256 verified" in out and "challenge submit predictions.csv --task" in out

    (tmp_path / "r1" / "penguins" / "train.csv").write_text("tampered")  # a damaged local copy is fetched again
    code, out, _ = run(capsys, participant, "download", "--to", str(tmp_path), "--task", "penguins")
    assert code == 0 and "already there" in out
    assert hashlib.sha256((tmp_path / "r1" / "penguins" / "train.csv").read_bytes()).hexdigest() == \
        next(e["sha256"] for e in json.loads(public.read_bytes("releases/r1/penguins/manifest.json"))["files"]
             if e["path"] == "train.csv")


def test_download_of_a_file_that_does_not_match_its_manifest_fails(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config, participant = released
    public = stores(config)[0]
    key = "releases/r1/penguins/sample_submission.csv"
    original = public.read_bytes(key)
    public.write_bytes(key, original + b"0000,x\n")
    try:
        code, _, err = run(capsys, participant, "download", "--to", str(tmp_path), "--task", "penguins")
    finally:
        public.write_bytes(key, original)
    assert code == 2 and "sample_submission.csv" in err and "does not match the manifest" in err
    assert not (tmp_path / "r1" / "penguins" / "sample_submission.csv").exists()  # never a file that failed its check
    assert not list((tmp_path / "r1" / "penguins").glob(".part-*"))


def test_an_unknown_task_is_named(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, participant = released
    code, _, err = run(capsys, participant, "download", "--to", str(tmp_path), "--task", "nope")
    assert code == 2 and "unknown task id(s) nope: release r1 has digits, penguins" in err


def test_an_invalid_file_is_refused_before_upload_with_the_scorers_message(
        released: tuple[ChallengeConfig, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, participant = released
    assert run(capsys, participant, "download", "--to", str(tmp_path), "--task", "penguins")[0] == 0
    bad = tmp_path / "one-missing.csv"
    predictions(tmp_path, "penguins").iloc[1:].to_csv(bad, index=False)
    before = team_keys(config, "penguins")
    code, out, err = run(capsys, participant, "submit", str(bad), "--task", "penguins")
    assert code == 1 and "refused, nothing uploaded" in err and "test id(s) are missing" in err
    assert team_keys(config, "penguins") == before
    refusal = err.split("refused, nothing uploaded: ", 1)[1].strip()

    stores(config)[2].write_bytes("team-b/penguins/one-missing.csv", bad.read_bytes())  # uploaded by hand instead
    score_submissions(config_path=saved(config), tasks=["penguins"])
    scored = json.loads(stores(config)[2].read_bytes("team-b/penguins/one-missing.csv.result.json"))
    assert scored["status"] == "invalid" and scored["message"] == refusal


@pytest.mark.parametrize("name, message", [("notes.txt", "only .csv and .parquet"), (".hidden.csv", "cannot be an upload's name"),
                                           ("a/b.csv", "cannot be an upload's name")])
def test_names_that_cannot_be_submissions_are_refused(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str], name: str, message: str) -> None:
    config, participant = released
    path = tmp_path / "x.csv"
    path.write_text("id,label\n")
    before = team_keys(config, "penguins")
    code, _, err = run(capsys, participant, "submit", str(path), "--task", "penguins", "--name", name)
    assert code == 2 and message in err
    assert team_keys(config, "penguins") == before


def test_submit_a_pandas_file_then_read_it_back(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config, participant = released
    assert run(capsys, participant, "download", "--to", str(tmp_path), "--task", "digits")[0] == 0
    path = tmp_path / "day-one.csv"
    answers = pd.read_parquet(io.BytesIO(stores(config)[1].read_bytes("releases/r1/digits/answers.parquet")))
    perfect = predictions(tmp_path, "digits")  # ids read as integers: 3, not 0003
    perfect["label"] = perfect["id"].map(dict(zip(answers["id"].astype(int), answers["label"])))
    perfect.to_csv(path, index=False)  # the best file: its note is the one on the board
    code, out, err = run(capsys, participant, "submit", str(path), "--task", "digits", "--message", HOSTILE_NOTE)
    assert code == 0, err
    assert "valid" in out and "received: " in out and "team-a/digits/day-one.csv" in out
    assert "quota: at most 9 of 10 scored submissions left today for digits" in out
    assert "next scoring run" in out
    code, out, _ = run(capsys, participant, "submissions", "--task", "digits")
    assert code == 0 and "day-one.csv" in out and "pending" in out

    predictions(tmp_path, "digits").to_csv(path, index=False)
    code, out, err = run(capsys, participant, "submit", str(path), "--task", "digits")  # the same name again
    assert code == 0 and "day-one-2.csv" in out, err

    score_submissions(config_path=saved(config), tasks=["digits"])
    code, out, _ = run(capsys, participant, "submissions", "--task", "digits")
    assert code == 0 and "scored" in out and "pending" not in out
    assert "quota today: 8 of 10 left" in out
    assert "\x1b" not in out  # the note's escape sequence is not replayed on the terminal
    _, private, submissions = stores(config)
    records = [json.loads(private.read_bytes(i.key)) for i in private.list("results/team-a/digits/")]
    described = [r for r in records if r["name"] == "day-one.csv"]
    assert described and described[0]["description"].startswith("tried <b>bold</b>")
    assert "\x1b" not in described[0]["description"]
    assert not [r for r in records if r["name"] == "day-one-2.csv" and "description" in r]  # no note of its own
    history = json.loads(submissions.read_bytes("team-a/digits/history.json"))
    assert {r["name"]: r.get("description", "")[:10] for r in history["submissions"]} == \
        {"day-one.csv": "tried <b>b", "day-one-2.csv": ""}
    page = stores(config)[0].read_bytes("leaderboard/index.html").decode()
    board = json.loads(stores(config)[0].read_bytes("leaderboard/leaderboard.json"))
    assert board["tasks"]["digits"]["entries"][0].get("description", "").startswith("tried <b>"), board["tasks"]["digits"]
    assert "tried &lt;b&gt;bold&lt;/b&gt;" in page and "<script>alert(1)" not in page


def test_a_note_describes_only_the_bytes_it_was_written_for(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config, participant = released
    submit_penguins(capsys, participant, tmp_path, "renoted.csv", "--message", "first try")
    submissions = stores(config)[2]
    other = predictions(tmp_path, "penguins").assign(label="Gentoo").to_csv(index=False).encode()
    submissions.write_bytes("team-a/penguins/renoted.csv", other)  # replaced by hand, the old note left beside it
    score_submissions(config_path=saved(config), tasks=["penguins"])
    body = json.loads(submissions.read_bytes("team-a/penguins/renoted.csv.result.json"))
    assert body["status"] == "scored" and "description" not in body


def test_wait_returns_once_the_scorer_answered(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config, participant = released
    submit_penguins(capsys, participant, tmp_path, "waited.csv")
    outcome: list[int] = []
    waiter = threading.Thread(target=lambda: outcome.append(cli.main(
        ["submissions", "--participant", str(participant), "--task", "penguins", "--wait", "--poll", "0.2",
         "--timeout", "5"])))
    waiter.start()
    score_submissions(config_path=saved(config), tasks=["penguins"])
    waiter.join(timeout=120)
    out = capsys.readouterr().out
    assert outcome == [0] and "waiting for 1 upload(s) to be scored" in out and "waited.csv" in out
    assert "scored" in out.split("waited.csv", 1)[1].splitlines()[0]


def test_quota_and_the_window_are_told_before_upload(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config, participant = released
    public = stores(config)[0]
    assert read_challenge_info(public).max_submissions_per_day == 10  # written by the publish and scoring runs
    assert run(capsys, participant, "download", "--to", str(tmp_path), "--task", "penguins")[0] == 0
    path = tmp_path / "late.csv"
    predictions(tmp_path, "penguins").to_csv(path, index=False)
    now = datetime.now(timezone.utc)
    try:
        refresh_challenge_info(public, config.model_copy(update={"policy": config.policy.model_copy(
            update={"closes_at": now - timedelta(hours=1)})}), None)
        code, _, err = run(capsys, participant, "submit", str(path), "--task", "penguins")
        assert code == 2 and "not uploaded: the challenge closed at" in err
        refresh_challenge_info(public, config.model_copy(update={"policy": config.policy.model_copy(
            update={"max_submissions_per_day": 1})}), None)
        sample = public.read_bytes("releases/r1/penguins/sample_submission.csv")
        stores(config)[2].write_bytes("team-a/penguins/by-hand.csv", sample)  # not scored yet: it may take the last one
        code, _, err = run(capsys, participant, "submit", str(path), "--task", "penguins")
        assert code == 2 and "no scored submission left today for penguins" in err
    finally:
        refresh_challenge_info(public, config, None)
    assert "late.csv" not in " ".join(team_keys(config, "penguins"))


def test_challenge_json_says_the_rules(released: tuple[ChallengeConfig, Path]) -> None:
    config, _ = released
    info = read_challenge_info(stores(config)[0])
    assert (info.challenge, info.final_picks, info.public_fraction) == (config.name, 2, 0.3)
    assert info.scoring.next_run_due is None  # runs started by hand announce no next run
    assert info.updated_at


def test_the_card_answers_a_participants_questions(released: tuple[ChallengeConfig, Path]) -> None:
    config, _ = released
    card = stores(config)[0].read_bytes("releases/r1/penguins/README.md").decode()
    manifest = json.loads(stores(config)[0].read_bytes("releases/r1/penguins/manifest.json"))
    counts = manifest["split"]["counts"]
    for expected in ["| deadline | no closing time is set yet",
                     "| daily quota | 10 scored submissions per team and task per UTC day",
                     f"30% of the test set ({counts['test_public']} rows) scores the public leaderboard",
                     f"the other 70% ({counts['test_private']} rows) decides the final ranking",
                     f"{config.storage.submissions}/<your team>/penguins/<any name>.csv",
                     "challenge download --task penguins", 'challenge submit predictions.csv --task penguins',
                     "challenge submissions --task penguins --wait", "Name up to 2 of your scored submissions",
                     "`macro_f1`: the F1 score", "leaderboard/index.html", "`3` or `3.0` is the id `0003`", "corrections/<release>/penguins.json"]:
        assert expected in card, expected


def test_the_card_page(released: tuple[ChallengeConfig, Path], tmp_path: Path) -> None:
    """The card as a participant sees it rendered (GitHub-like markdown), kept as a screenshot."""
    from markdown_it import MarkdownIt

    config, _ = released
    if not config.storage.public.startswith("/"):
        pytest.skip("one screenshot is enough: the local backend's")
    card = stores(config)[0].read_bytes("releases/r1/digits/README.md").decode()
    body = MarkdownIt("commonmark").enable("table").render(card)
    style = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;vertical-align:top}"
             "code{background:#f3f3f3;padding:0 .2em}pre{background:#f6f8fa;padding:.6em}")
    page = tmp_path / "card.html"
    page.write_text(f"<!DOCTYPE html><meta charset='utf-8'><style>{style}</style>{body}", encoding="utf-8")
    dom = chromium(page.as_uri(), tmp_path / "profile", screenshot="dataset-card.png", window=(1200, 2400))
    assert "challenge download --task digits" in dom and "<script" not in body
    assert (SHOTS / "dataset-card.png").is_file()


def test_a_local_challenge_gets_participant_files_without_policies(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config("local", tmp_path, None, teams=[{"id": "team-a", "name": "A"}])
    path = write_config(config, tmp_path / "challenge.yaml")
    assert cli.main(["--config", str(path), "iam", "--out", str(tmp_path / "out")]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["team-a.participant.yaml"]
    assert "no IAM policies" in capsys.readouterr().err


def test_a_missing_participant_yaml_says_where_it_comes_from(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHALLENGE_PARTICIPANT", raising=False)
    assert cli.main(["submissions"]) == 2
    assert "participant.yaml not found" in capsys.readouterr().err
    (tmp_path / "participant.yaml").write_text("team: team-a\npublic: x\n")
    assert cli.main(["submissions"]) == 2
    err = capsys.readouterr().err
    assert "participant.yaml: challenge: required key is missing" in err and "submissions: required key" in err


def test_parquet_from_pandas_is_checked_too(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, participant = released
    assert run(capsys, participant, "download", "--to", str(tmp_path), "--task", "penguins")[0] == 0
    frame = predictions(tmp_path, "penguins")
    frame.loc[0, "label"] = "Emperor"
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    path = tmp_path / "emperor.parquet"
    path.write_bytes(buffer.getvalue())
    code, _, err = run(capsys, participant, "submit", str(path), "--task", "penguins")
    assert code == 1 and "label(s) are not classes of this task (e.g. Emperor)" in err


def test_a_deployed_scoring_run_announces_the_next_one() -> None:
    """What a run of the score-submissions deployment puts in challenge.json: its interval and next run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.states import Scheduled

    from challenge.flows.scoring_schedule import _next_run

    due = (datetime.now(timezone.utc) + timedelta(minutes=7)).replace(microsecond=0)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("score-submissions")
        deployment = client.create_deployment(flow_id=flow_id, name="announce-test", paused=True, schedules=[
            DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(minutes=5)), active=True)])
        client.create_flow_run_from_deployment(deployment, state=Scheduled(scheduled_time=due + timedelta(minutes=5)))
        client.create_flow_run_from_deployment(deployment, state=Scheduled(scheduled_time=due))
    assert _next_run(str(deployment)) == {"every_minutes": 5.0, "next_run_due": due.isoformat()}


def test_croissant_yields_the_images_of_an_image_column(released: tuple[ChallengeConfig, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """mlcroissant reads the downloaded folder: an image column gives images (joined on their paths), not text."""
    import mlcroissant as mlc
    import numpy as np
    from PIL import Image

    _, participant = released
    assert run(capsys, participant, "download", "--to", str(tmp_path), "--task", "digits")[0] == 0
    folder = tmp_path / "r1" / "digits"
    dataset = mlc.Dataset(jsonld=str(folder / "croissant.json"))
    assert not dataset.metadata.issues.errors, dataset.metadata.issues.report()
    rows = list(dataset.records(record_set="test"))
    assert len(rows) == len(pd.read_csv(folder / "test.csv"))
    for row in rows[:5]:
        path = row["test/image_path"].decode()
        assert isinstance(row["test/image"], Image.Image)
        assert (np.asarray(row["test/image"].convert("L")) == np.asarray(Image.open(folder / path).convert("L"))).all()


# --- with the team's own credentials, on a moto server that enforces IAM ---------------------------------


@contextlib.contextmanager
def credentials(key: dict[str, str]) -> Iterator[None]:
    """This process's boto3 clients signed with `key` (boto3's default session caches what it resolved)."""
    saved_env = {n: os.environ.get(n) for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        for name, value in saved_env.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        boto3.DEFAULT_SESSION = None


@pytest.fixture(scope="module")
def enforced(moto_iam: Moto, tmp_path_factory: pytest.TempPathFactory) -> tuple[ChallengeConfig, Path, dict[str, str]]:
    """penguins released on an IAM-enforcing moto (as the organizer), team-a's user with its policy, its
    participant.yaml, and the environment of a shell holding only team-a's keys."""
    root = tmp_path_factory.mktemp("participant-iam")
    storage = {"intake": "s3://pi-intake/drops", "public": "s3://pi-public/site", "private": "s3://pi-private",
               "submissions": "s3://pi-submissions", "s3": {"endpoint_url": moto_iam.endpoint}}
    config = ChallengeConfig.model_validate({"name": "iam-day-one", "title": "IAM day one", "storage": storage,
                                             "teams": [{"id": "team-a", "name": "A"}, {"id": "team-b", "name": "B"}]})
    admin = moto_iam.client("s3")
    for bucket in ("pi-intake", "pi-public", "pi-private", "pi-submissions"):
        admin.create_bucket(Bucket=bucket)
    with credentials(moto_iam.admin_key):
        stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
        publish_release(config_path=saved(config), release="r1")
        assert cli.main(["--config", saved(config), "iam", "--out", str(root / "iam")]) == 0
    iam = moto_iam.client("iam")
    iam.create_user(UserName="pi-team-a")
    iam.put_user_policy(UserName="pi-team-a", PolicyName="team", PolicyDocument=(root / "iam" / "team-a.json").read_text())
    key = iam.create_access_key(UserName="pi-team-a")["AccessKey"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    return config, root / "iam" / "team-a.participant.yaml", env


def participant_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a participant types it, in a shell that has the team's keys and nothing else."""
    return subprocess.run([str(Path(sys.executable).parent / "challenge"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_every_participant_command_with_the_teams_own_keys(enforced: tuple[ChallengeConfig, Path, dict[str, str]],
                                                          moto_iam: Moto, tmp_path: Path) -> None:
    config, participant, env = enforced
    shutil.copy(participant, tmp_path / "participant.yaml")  # found in the working folder
    got = participant_cli(env, tmp_path, "download")
    assert got.returncode == 0, got.stderr
    test = pd.read_csv(tmp_path / "challenge-data" / "r1" / "penguins" / "test.csv")
    pd.DataFrame({"id": test["id"], "label": "Adelie"}).to_csv(tmp_path / "adelie.csv", index=False)
    got = participant_cli(env, tmp_path, "submit", "adelie.csv", "--task", "penguins", "--message", "all Adelie")
    assert got.returncode == 0, got.stderr
    assert "received: s3://pi-submissions/team-a/penguins/adelie.csv" in got.stdout

    bad = pd.DataFrame({"id": test["id"][1:], "label": "Adelie"})
    bad.to_csv(tmp_path / "short.csv", index=False)
    got = participant_cli(env, tmp_path, "submit", "short.csv", "--task", "penguins")
    assert got.returncode == 1 and "refused, nothing uploaded" in got.stderr and "test id(s) are missing" in got.stderr

    with credentials(moto_iam.admin_key):
        score_submissions(config_path=saved(config))
        listed = [o["Key"] for o in moto_iam.client("s3").list_objects_v2(Bucket="pi-submissions")["Contents"]]
    assert "team-a/penguins/short.csv" not in listed
    got = participant_cli(env, tmp_path, "submissions")
    assert got.returncode == 0, got.stderr
    line = next(x for x in got.stdout.splitlines() if "adelie.csv" in x)
    assert "scored" in line and '"all Adelie"' in line


def test_another_teams_folder_stays_closed_to_a_participant_yaml_edited_by_hand(
        enforced: tuple[ChallengeConfig, Path, dict[str, str]], tmp_path: Path) -> None:
    _, participant, env = enforced
    (tmp_path / "participant.yaml").write_text(participant.read_text().replace("team: team-a", "team: team-b"))
    assert participant_cli(env, tmp_path, "download", "--task", "penguins").returncode == 0
    test = pd.read_csv(tmp_path / "challenge-data" / "r1" / "penguins" / "test.csv", dtype=str)
    pd.DataFrame({"id": test["id"], "label": "Adelie"}).to_csv(tmp_path / "as-b.csv", index=False)
    got = participant_cli(env, tmp_path, "submit", "as-b.csv", "--task", "penguins")
    assert got.returncode == 2 and "S3 refused PutObject (AccessDenied) for team team-b" in got.stderr, got.stderr
    assert "Traceback" not in got.stderr
