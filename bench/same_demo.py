"""Does a change leave the demo's output as it was? Runs `challenge demo` at two revisions and compares.

    python bench/same_demo.py                      # main against the working tree
    python bench/same_demo.py --before 7dfa1ff --after HEAD

Each side runs in its own git worktree and virtualenv under build/same-demo/ (made once, then reused),
in the same folder (build/same-demo/demo, whose path the cards print), with the same fixed id key (the
only random secret a challenge makes) so that both publish the same opaque ids. What is compared: the demo's printed lines (boards included) and every file it leaves in
public/ and private/. Times and durations are masked first, as they differ between any two runs (and
so do the axes of the page's score-over-time charts: each is compared by what its points say); gzip
files are compared on their contents, the results index on the records it caches. Prints each file
that differs and exits 1 if any does, 0 if the two outputs are the same. Staged fingerprints are named
by task and order (they hash the check code's bytes too: see staged_fingerprints).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "same-demo"
FIXED_KEY = "import secrets; secrets.token_bytes = lambda n=32: bytes(range(n))"
RUN_DEMO = f"""{FIXED_KEY}
import runpy, sys
script, folder = sys.argv[1:3]
sys.argv = ["challenge", "demo", folder]
runpy.run_path(script, run_name="__main__")
"""
MASKS = [
    (re.compile(rb"<svg class='chart'.*?</svg>", re.S), None),  # drawn from the upload times: its titles kept
    (re.compile(rb"\d{4}-?\d\d-?\d\d[T ]\d\d[:-]?\d\d([:-]?\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?( UTC)?"), b"<time>"),
    (re.compile(rb"\d{4}-\d\d-\d\d"), b"<date>"),
    (re.compile(rb"\(\d+(\.\d+)? s\)|done in \d+ s"), b"<seconds>"),
    (re.compile(rb"PREFECT_HOME=\S+"), b"PREFECT_HOME=<home>"),
    (re.compile(rb"\b\d{10}\.\d+\b"), b"<epoch>"),
    (re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), b"<uuid>"),  # Data Docs' element ids
]
CACHE_DIGEST = re.compile(rb"\b[0-9a-f]{32,64}\b")  # the caches key files by digest, and those files hold times
SHOWN = 30  # differing files listed
TEXT_SUFFIXES = {".json", ".csv", ".md", ".html", ".yaml", ".txt", ".jsonl", ".svg", ".log", ""}


def _run(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def checkout(revision: str) -> Path:
    """A worktree of `revision` with its own virtualenv (the working tree itself for "WORKTREE")."""
    if revision == "WORKTREE":
        return ROOT
    commit = _run("git", "rev-parse", "--short=12", f"{revision}^{{commit}}", cwd=ROOT)
    tree = WORK / commit
    if not (tree / ".venv" / "bin" / "challenge").exists():
        if not tree.exists():
            _run("git", "worktree", "add", "--detach", str(tree), commit, cwd=ROOT)
        _run(sys.executable, "-m", "venv", str(tree / ".venv"))
        _run(str(tree / ".venv" / "bin" / "pip"), "install", "--quiet", "-e", str(tree))
    return tree


def run_demo(tree: Path, out: Path) -> bytes:
    """The demo's printed output, the demo folder at `out`."""
    python = tree / ".venv" / "bin" / "python"
    script = tree / ".venv" / "bin" / "challenge"
    env = {**os.environ, "PREFECT_HOME": tempfile.mkdtemp(prefix="same-demo-home-"), "CHALLENGE_NO_SERVER": "1",
           "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run([str(python), "-c", RUN_DEMO, str(script), str(out)], cwd=tree, env=env,
                          capture_output=True)
    if done.returncode:
        sys.exit(f"the demo failed in {tree}:\n{done.stdout.decode()}\n{done.stderr.decode()}")
    return done.stdout


def masked(data: bytes, folder: Path) -> bytes:
    data = data.replace(str(folder).encode(), b"<demo>")
    for pattern, mask in MASKS:
        data = pattern.sub(_numbers_masked if mask is None else mask, data)
    return data


def _numbers_masked(match: re.Match[bytes]) -> bytes:
    """A chart's axes and coordinates follow the clock; what it says (each team's points) is in its titles."""
    return b"<chart: " + b" | ".join(re.findall(rb"<title>(.*?)</title>", match.group(0))) + b">"


def staged_fingerprints(folder: Path) -> dict[bytes, bytes]:
    """Each staged version's fingerprint (and its 16-character folder name) → a name by task and order.

    The fingerprint hashes the drop's files *and the rules* (expectations/: the suites and the custom checks'
    source bytes), so a change to the check code, a moved import included, gives new fingerprints for the same
    data. Shown apart: "rules digest" lines say how many differ; the data they name is compared in full."""
    names: dict[bytes, bytes] = {}
    metas = sorted((json.loads(p.read_bytes()) for p in (folder / "private" / "staged").glob("*/*/staged.json")),
                   key=lambda m: (m["task_id"], m["staged_at"]))
    for index, meta in enumerate(metas):
        name = f"<staged {meta['task_id']} #{index}>".encode()
        names[meta["fingerprint"].encode()] = name
        names[meta["fingerprint"][:16].encode()] = name
    return names


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under public/ and private/, masked where it is text."""
    files = {}
    fingerprints = staged_fingerprints(folder)
    rename = re.compile(b"|".join(re.escape(k) for k in sorted(fingerprints, key=len, reverse=True))) if fingerprints else None
    for path in sorted(p for part in ("public", "private") for p in (folder / part).rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
            if path.name == "results-index.json.gz":  # the records it caches, as records
                data = json.dumps({key: {**entry, "raw": json.loads(entry["raw"])}
                                   for key, entry in json.loads(data).items()}, indent=2).encode()
        if path.suffix in TEXT_SUFFIXES or path.suffix == ".gz":
            data = masked(data, folder)
        if path.relative_to(folder).parts[:2] == ("private", "cache"):
            data = CACHE_DIGEST.sub(b"<digest>", data)
        key = masked(str(path.relative_to(folder)).encode(), folder)
        if rename is not None:
            data, key = (rename.sub(lambda m: fingerprints[m.group(0)], part) for part in (data, key))
        files[key.decode()] = data
    return files


def _without_fields(data: bytes, added: re.Pattern[bytes]) -> bytes:
    """An indented JSON text without the lines of the added fields (and the comma they made necessary)."""
    if not added.search(data):
        return data
    return re.sub(rb",(\n *[}\]])", rb"\1", added.sub(b"", data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="a git revision (default: main)")
    parser.add_argument("--after", default="WORKTREE", help="a git revision, or WORKTREE (default)")
    parser.add_argument("--new-field", action="append", default=[], metavar="NAME",
                        help="a JSON field the change adds on purpose: left out on the after side of files whose before side lacks it")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    sides = {}
    for name, revision in (("before", args.before), ("after", args.after)):
        tree = checkout(revision)
        out = WORK / "demo"  # one path for both sides: the folder's path is in cards and manifests
        shutil.rmtree(out, ignore_errors=True)
        printed = masked(run_demo(tree, out), out)
        sides[name] = (printed, contents(out))
        print(f"{name}: {revision} ({tree}) -> {out}: {len(sides[name][1])} files")
    (printed_a, files_a), (printed_b, files_b) = sides["before"], sides["after"]
    if args.new_field:
        added = re.compile(rb'\n *"(' + b"|".join(re.escape(f.encode()) for f in args.new_field) + rb')": [^\n]*?,?(?=\n)')
        files_b = {key: data if added.search(files_a.get(key, b"")) else _without_fields(data, added)
                   for key, data in files_b.items()}  # only where the before side has no such field
    differ = []
    shutil.rmtree(WORK / "differs", ignore_errors=True)
    if printed_a != printed_b:
        differ.append("the printed output")
        (WORK / "printed-before.txt").write_bytes(printed_a)
        (WORK / "printed-after.txt").write_bytes(printed_b)
    for key in sorted(files_a.keys() | files_b.keys()):
        if key not in files_a or key not in files_b:
            differ.append(f"{key} (only {'after' if key not in files_a else 'before'})")
        elif files_a[key] != files_b[key]:
            differ.append(key)
            for side, files in (("before", files_a), ("after", files_b)):  # masked copies, to diff
                copy = WORK / "differs" / side / key
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_bytes(files[key])
    for line in differ[:SHOWN]:
        print(f"differs: {line}")
    if len(differ) > SHOWN:
        print(f"... and {len(differ) - SHOWN} more (masked copies of each under {WORK / 'differs'})")
    print(f"{len(files_a)} files before, {len(files_b)} after; {len(differ)} differ"
          + ("" if differ else ": the demo's printed boards and published files are byte-identical (times masked)"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
