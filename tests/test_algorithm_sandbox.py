"""The algorithm track's sandbox (issue 24, items 1, 2 and 6): an archive is unpacked safely; a team's
`main.py` runs under bubblewrap on a real downloaded task with no network, no view of the host, and bounded
time, memory, processes and output; each hostile algorithm ends with its failure class and the next run is
unaffected; the example baseline algorithm gives the bytes the baseline flow uploads; `challenge
algorithm-check` prints what the scorer says."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLES, make_config, saved, stores
from test_publish import stage

from challenge.app import cli
from challenge.core.config import AlgorithmSettings
from challenge.core.errors import AlgorithmRefused, SandboxUnavailable
from challenge.flows.publish_release import publish_release
from challenge.tasks.algorithms import sandbox
from challenge.tasks.algorithms.archive import ArchiveLimits, unpack_archive
from challenge.tasks.algorithms.check import check_algorithm
from challenge.tasks.algorithms.task_input import prepare_input, task_description
from challenge.tasks.baselines.training import released_task, train_baseline
from challenge.tasks.participant.tools import download_task

EXAMPLE_ALGORITHMS = Path(__file__).resolve().parent.parent / "challenge" / "example_algorithms"
FAST = AlgorithmSettings(max_seconds=20, max_cpu_seconds=20, max_memory_mb=1024, max_processes=24, max_output_mb=5)
pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs Debian's bubblewrap: `make test` installs it")


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The penguins task of a real release, downloaded as a participant downloads it."""
    request.getfixturevalue("prefect_harness")
    root = tmp_path_factory.mktemp("algorithms")
    config = make_config("local", root, None)
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    publish_release(config_path=saved(config), release="r1")
    return download_task(stores(config)[0], "r1", "penguins", root / "downloads").folder


def algorithm(folder: Path, main: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(textwrap.dedent(main))
    return folder


COPY_SAMPLE = """
import argparse, shutil
from pathlib import Path
p = argparse.ArgumentParser(); p.add_argument("--input", type=Path); p.add_argument("--output", type=Path)
a = p.parse_args()
shutil.copyfile(a.input / "sample_submission.csv", a.output / "predictions.csv")
"""


def test_a_valid_algorithm_reads_its_task_and_writes_predictions(task: Path, tmp_path: Path) -> None:
    probe = algorithm(tmp_path / "probe", COPY_SAMPLE + """
import json, os, sys
seen = {"task": json.loads((a.input / "task.json").read_text()), "input": sorted(os.listdir(a.input)),
        "cwd": os.getcwd(), "argv": sys.argv, "uid": os.getuid()}
(a.output / "seen.json").write_text(json.dumps(seen))
print("x" * 100)
""")
    (probe / "helper.py").write_text("VALUE = 42\n")
    (probe / "main.py").write_text((probe / "main.py").read_text() + "import helper; assert helper.VALUE == 42\n")
    checked = check_algorithm(probe, task, FAST)
    assert (checked.status, checked.run.status) == ("valid", "finished"), (checked.message, checked.run.stderr_tail)
    assert checked.rows > 0 and checked.run.seconds > 0


def test_peak_memory_is_the_algorithms_own(task: Path, tmp_path: Path) -> None:
    """Sampled from the sandbox's processes: 300 MB held for a second reads as about that, not as the memory of
    the process that started the sandbox (a child's rusage would count that too)."""
    hungry = algorithm(tmp_path / "hungry", COPY_SAMPLE + """
import time
block = bytearray(300 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep(1)
""")
    checked = check_algorithm(hungry, task, FAST)
    assert checked.status == "valid", checked.message
    assert 290 <= checked.run.peak_memory_mb <= 600, checked.run


def test_task_json_says_what_the_manifest_and_tables_say(task: Path) -> None:
    described = task_description(task, sandbox.SandboxLimits.of(FAST))
    assert described["task_id"] == "penguins" and described["kind"] == "classification" and described["metric"]
    assert described["files"] == {"train": "train.parquet", "test": "test.parquet", "sample_submission": "sample_submission.csv"}
    assert described["output"] == "predictions.csv" and described["labels"] == sorted(described["labels"])
    assert {"Adelie", "Gentoo", "Chinstrap"} <= set(described["labels"])
    assert all(c["modality"] in ("numeric", "categorical", "text", "image") for c in described["columns"].values())
    assert described["budget"] == {"seconds": 20, "cpu_seconds": 20, "memory_mb": 1024, "processes": 24, "output_mb": 5,
                                   "threads": 2}


PROBES = """
import argparse, json, os, socket, sys
from pathlib import Path
p = argparse.ArgumentParser(); p.add_argument("--input", type=Path); p.add_argument("--output", type=Path)
a = p.parse_args()
targets = json.loads({targets!r})
found = {{}}
def attempt(name, action):
    try:
        action()
        found[name] = "succeeded"
    except Exception as error:
        found[name] = f"{{type(error).__name__}}: {{error}}"
for name, port in targets["ports"].items():
    attempt("connect " + name, lambda port=port: socket.create_connection(("127.0.0.1", port), timeout=2).close())
attempt("connect outside", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2).close())
attempt("resolve a name", lambda: socket.getaddrinfo("example.com", 80))
for name, path in targets["paths"].items():
    attempt("read " + name, lambda path=path: open(path, "rb").read(1) if os.path.isfile(path) else os.listdir(path))
for name in ("/algorithm/x", "/input/x", "/x", "/usr/x", "/etc/x", "/root/x"):
    attempt("write " + name, lambda name=name: open(name, "w").write("x"))
attempt("write /tmp (scratch)", lambda: open("/tmp/x", "w").write("x"))
attempt("secrets in the environment", lambda: [k for k in os.environ if k.startswith(("AWS", "PREFECT", "CHALLENGE"))][0])
(a.output / "found.json").write_text(json.dumps(found))
import shutil; shutil.copyfile(a.input / "sample_submission.csv", a.output / "predictions.csv")
"""


def test_nothing_outside_its_input_and_output_is_reachable(task: Path, tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    """No network (the S3 server, any port on 127.0.0.1, the outside world), no storage location, no other
    team's archive, no host file; every write outside OUT (and its small /tmp) is refused."""
    endpoint = request.getfixturevalue("s3_endpoint")
    config = make_config("s3", tmp_path / "s3", endpoint)
    local = make_config("local", tmp_path / "local", None)
    for name in ("intake", "public", "private", "submissions"):
        Path(getattr(local.storage, name)).mkdir(parents=True, exist_ok=True)
    other_archive = tmp_path / "submissions" / "team-b" / "algorithms" / "secret.zip"
    other_archive.parent.mkdir(parents=True)
    other_archive.write_bytes(b"PK")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        targets = {"ports": {"s3 endpoint": int(endpoint.rsplit(":", 1)[1]), "a host port": listening.getsockname()[1]},
                   "paths": {"private": local.storage.private, "public": local.storage.public,
                             "submissions": local.storage.submissions, "another team's archive": str(other_archive),
                             "/etc/shadow": "/etc/shadow", "/etc/passwd": "/etc/passwd", "/etc": "/etc",
                             "the host's /tmp": str(tmp_path), "the test suite": __file__}}
        probe = algorithm(tmp_path / "probe", PROBES.format(targets=json.dumps(targets)))
        output = tmp_path / "out"
        output.mkdir()
        limits = sandbox.SandboxLimits.of(FAST)
        run = sandbox.run_in_sandbox(probe, prepare_input(task, tmp_path / "in", limits)[0], output, limits)
    assert run.status == "finished", run.stderr_tail
    found = json.loads((output / "found.json").read_text())
    allowed = {"write /tmp (scratch)"}
    assert found["write /tmp (scratch)"] == "succeeded"
    escaped = {name: result for name, result in found.items() if result == "succeeded" and name not in allowed}
    assert not escaped, escaped
    assert len(found) == 2 + 1 + 1 + len(targets["paths"]) + 6 + 1 + 1
    assert config.storage.private.startswith("s3://")  # (the S3 location is behind the endpoint tried above)


HOSTILE = {
    "infinite loop": ("while True: pass", "timeout"),
    "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", "timeout"),
    "20 GB allocation": ("block = bytearray(20 << 30)", "out of memory"),
    "10 GB output file": ("import os\nwith open('/output/huge.bin', 'wb') as f:\n    for _ in range(10 << 10):\n"
                          "        f.write(b'x' * (1 << 20))", "output too large"),
    "kills its parent": ("import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(30)", "crashed"),
    "raises": ("raise RuntimeError('my bug')", "crashed"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_algorithm_is_contained_with_its_failure_class(name: str, task: Path, tmp_path: Path) -> None:
    code, expected = HOSTILE[name]
    settings = FAST.model_copy(update={"max_seconds": 4}) if expected == "timeout" else FAST
    checked = check_algorithm(algorithm(tmp_path / "hostile", code), task, settings)
    assert checked.status == expected, (checked.message, checked.run)
    assert checked.run.seconds < settings.max_seconds + 10
    if name == "raises":
        assert "RuntimeError: my bug" in checked.run.stderr_tail and "exited with code 1" in checked.message
    # the host is unharmed and the next run is as if nothing happened
    again = check_algorithm(algorithm(tmp_path / "next", COPY_SAMPLE), task, FAST)
    assert again.status == "valid", (again.message, again.run.stderr_tail)
    assert not [p for p in Path("/proc").glob("[0-9]*") if _owner(p) >= sandbox._RUN_UIDS[0]]


def _owner(proc: Path) -> int:
    try:
        return proc.stat().st_uid
    except OSError:
        return -1


def test_a_flood_of_stderr_keeps_its_end_only(task: Path, tmp_path: Path) -> None:
    flood = algorithm(tmp_path / "flood", COPY_SAMPLE + """
import sys
for i in range(1600):
    sys.stderr.write(f"line {i} " + "y" * 65536 + "\\n")
sys.stderr.write("the last line\\n")
""")
    checked = check_algorithm(flood, task, FAST)
    assert checked.status == "valid", checked.message
    assert checked.run.stderr_tail.endswith("the last line") and len(checked.run.stderr_tail) <= sandbox.STDERR_KEEP


def test_invalid_or_missing_predictions_get_the_scorers_words(task: Path, tmp_path: Path) -> None:
    nothing = check_algorithm(algorithm(tmp_path / "nothing", "open('/output/other.txt', 'w').write('hi')"), task, FAST)
    assert nothing.status == "invalid output" and "wrote no predictions.csv into OUT (it wrote other.txt)" in nothing.message
    for trick in ("os.symlink('/etc/passwd', '/output/predictions.csv')", "os.mkfifo('/output/predictions.csv')"):
        tricked = check_algorithm(algorithm(tmp_path / "trick", f"import os\n{trick}"), task, FAST)
        assert (tricked.status, tricked.predictions) == ("invalid output", b"") and "is a link, a folder or a pipe" in tricked.message
    short = algorithm(tmp_path / "short", COPY_SAMPLE + """
lines = (a.output / "predictions.csv").read_text().splitlines()
(a.output / "predictions.csv").write_text("\\n".join(lines[:-1]) + "\\n")
""")
    checked = check_algorithm(short, task, FAST)
    assert checked.status == "invalid output" and "missing" in checked.message.lower(), checked.message


def test_without_bubblewrap_nothing_runs(task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    marker = tmp_path / "ran"
    with pytest.raises(SandboxUnavailable, match="bwrap.*not installed.*apt-get install bubblewrap.*Nothing was run"):
        check_algorithm(algorithm(tmp_path / "a", f"open({str(marker)!r}, 'w')"), task, FAST)
    assert not marker.exists()


def test_the_example_baseline_gives_the_baseline_flows_bytes(task: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The scikit-learn baseline under the contract: in the sandbox, from its zip as a team uploads it, it writes
    exactly the bytes the baseline trained outside it writes; `challenge algorithm-check` says it is valid."""
    archive = tmp_path / "baseline.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(EXAMPLE_ALGORITHMS / "baseline" / "main.py", "main.py")
    checked = check_algorithm(archive, task, AlgorithmSettings())
    assert checked.status == "valid", (checked.message, checked.run.stderr_tail)
    direct = train_baseline(released_task(task))
    output = tmp_path / "by-hand"
    output.mkdir()
    subprocess.run([sys.executable, str(EXAMPLE_ALGORITHMS / "baseline" / "main.py"), "--input", str(task), "--output",
                    str(output)], check=True, timeout=300, capture_output=True)
    assert (output / "predictions.csv").read_bytes() == direct.csv  # by hand on the bare download: the same bytes
    assert checked.predictions == direct.csv
    code = cli.main(["algorithm-check", str(archive), "--task", str(task)])
    out = capsys.readouterr().out
    assert code == 0 and "penguins: finished in" in out and "valid: " in out and "the scorer accepts them" in out


def test_algorithm_check_finds_a_download_by_task_id_and_says_what_is_wrong(task: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str],
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = task.parent.parent
    broken = algorithm(tmp_path / "broken", "raise SystemExit('no model for you')")
    assert cli.main(["algorithm-check", str(broken), "--task", "penguins", "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert "crashed: it exited with code 1" in out and "no model for you" in out
    assert cli.main(["algorithm-check", str(broken), "--task", "no-such-task", "--data", str(data)]) == 2
    assert "run `challenge download --task no-such-task` first" in capsys.readouterr().err


# ---- the archive ------------------------------------------------------------------------------------------

LIMITS = ArchiveLimits(archive_bytes=1 << 20, unpacked_bytes=4 << 20, files=20)


def zip_of(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zipped:
        for info, data in entries:
            zipped.writestr(info, data)
    return out.getvalue()


def link(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(("entries", "problem"), [
    ([("main.py", b""), ("../evil.py", b"")], "'../evil.py' has a '..' or '.' part"),
    ([("main.py", b""), ("/etc/cron.d/evil", b"")], "'/etc/cron.d/evil' is an absolute path"),
    ([("main.py", b""), ("a\\..\\evil.py", b"")], "holds a backslash"),
    ([("main.py", b""), (link("data", "/etc/passwd"), b"/etc/passwd")], "'data' is a symbolic link"),
    ([("main.py", b""), ("main.py", b"again")], "'main.py' is in the archive twice"),
    ([("helper.py", b"")], "has no main.py at its top"),
    ([("my-algo/main.py", b""), ("my-algo/helper.py", b"")], "it has 'my-algo/main.py': zip the contents of that folder"),
    ([("main.py", b"")] + [(f"f{i}.py", b"") for i in range(25)], "holds 26 files; at most 20"),
    ([("main.py", b""), ("weights.bin", b"\0" * (5 << 20))], "unpacks to 5.0 MB; at most 4 MB"),
    ([("main.py", b""), ("bad\x1bname.py", b"")], "control character"),
])
@pytest.mark.filterwarnings("ignore:Duplicate name")  # (the archive with main.py twice is written on purpose)
def test_an_unsafe_archive_is_refused_naming_its_entry(entries: list, problem: str, tmp_path: Path) -> None:
    archive = tmp_path / "algo.zip"
    archive.write_bytes(zip_of(entries))
    with pytest.raises(AlgorithmRefused, match="algo.zip") as refused:
        unpack_archive(archive, tmp_path / "out", LIMITS)
    assert problem in str(refused.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path / "evil.py").exists()


def test_a_zip_bomb_and_a_non_zip_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_of([("main.py", b""), ("zeros", b"\0" * (200 << 20))]))  # 200 MB in ~200 kB
    assert bomb.stat().st_size < (1 << 20)
    with pytest.raises(AlgorithmRefused, match="unpacks to 200.0 MB"):
        unpack_archive(bomb, tmp_path / "out", LIMITS)
    big = tmp_path / "big.zip"
    big.write_bytes(os.urandom(2 << 20))
    with pytest.raises(AlgorithmRefused, match="big.zip is 2.0 MB; algorithm archives are at most 1 MB"):
        unpack_archive(big, tmp_path / "out", LIMITS)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(AlgorithmRefused, match="not a readable zip archive"):
        unpack_archive(junk, tmp_path / "out", LIMITS)


def test_a_good_archive_unpacks_with_its_folders(tmp_path: Path) -> None:
    archive = tmp_path / "algo.zip"
    archive.write_bytes(zip_of([("main.py", b"print(1)"), ("pkg/", b""), ("pkg/model.py", b"X = 1")]))
    assert sorted(unpack_archive(archive, tmp_path / "out", LIMITS)) == ["main.py", "pkg/model.py"]
    assert (tmp_path / "out" / "pkg" / "model.py").read_text() == "X = 1"
