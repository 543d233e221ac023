"""Words others wrote stay inert in every output (issue 22, item 1): one hostile corpus
(tests/hostile_text.py) fed to each kind of output — the functions of challenge/core/inert.py, then a drop whose
task.yaml and teams whose display names are the corpus, through collect, publish, scoring, finalize and the
results report, with the dataset card and results.md parsed by a markdown renderer that passes HTML."""

from __future__ import annotations

import csv
import io
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import EXAMPLES, make_config, saved, stores
from hostile_text import HOSTILE_TEXTS, TEAM_NAMES
from markdown_it import MarkdownIt
from test_publish import stage

from challenge.app import cli
from challenge.core.inert import FORMULA_STARTS, csv_cell, html_text, markdown_code, markdown_text, terminal_text
from challenge.tasks.scoring.notes import note_bytes

SAFE_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "code", "pre", "strong"}
CONTROL = [chr(c) for c in range(32) if chr(c) not in "\n"] + ["\x7f", "\u202e"]


class Elements(HTMLParser):
    """Every element and attribute of a rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [f"{k}={v}" for k, v in attrs]


def rendered(markdown: str) -> Elements:
    """The markdown as a renderer that passes raw HTML through (CommonMark with GFM tables) makes it."""
    found = Elements()
    found.feed(MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown))
    return found


def assert_inert(markdown: str) -> None:
    found = rendered(markdown)
    assert set(found.tags) <= SAFE_TAGS, set(found.tags) - SAFE_TAGS
    unsafe = [a for a in found.attributes if not a.startswith("class=language-")]  # our own ```sh fences
    assert not unsafe, unsafe  # no link, no image, no handler


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_each_kind_of_output_makes_the_corpus_inert(text: str) -> None:
    for markdown in (markdown_text(text), f"| {markdown_text(text)} | x |", f"# {markdown_text(text)}",
                     markdown_code(text), f"| {markdown_code(text)} | x |"):
        assert_inert(markdown)
    table = rendered(f"| a | b |\n|---|---|\n| {markdown_text(text)} | {markdown_code(text)} |\n")
    assert table.tags.count("tr") == 2 and table.tags.count("td") == 2  # one row, two cells: no table break
    assert "<" not in html_text(text) and "\n" not in html_text(text)
    cell = csv_cell(text)
    assert not str(cell).startswith(FORMULA_STARTS) or str(cell).startswith("'")
    assert not any(c in terminal_text(text) for c in CONTROL + ["\n"])


def test_a_plain_number_stays_a_number_in_csv() -> None:
    assert [csv_cell(v) for v in ("-3.5", "+2", "1e-4", 0.25, None, "team-a")] == ["-3.5", "+2", "1e-4", 0.25, None, "team-a"]


def hostile_drop(tmp_path: Path) -> Path:
    """The penguins example drop, its task.yaml's words replaced by the corpus."""
    folder = tmp_path / "penguins"
    shutil.copytree(EXAMPLES / "penguin-lab" / "penguins", folder)
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec.update(title=HOSTILE_TEXTS[0] + " " + HOSTILE_TEXTS[6], description=" ".join(HOSTILE_TEXTS),
                license=HOSTILE_TEXTS[3])
    for i, name in enumerate(spec["columns"]):
        column = spec["columns"][name]
        spec["columns"][name] = {**(column if isinstance(column, dict) else {"modality": column}),
                                 "description": HOSTILE_TEXTS[i % len(HOSTILE_TEXTS)]}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    return folder


@pytest.fixture(params=["local", "s3"])
def finalized(request: pytest.FixtureRequest, tmp_path: Path, prefect_harness: None):
    """The hostile drop released, a team per corpus string (its display name) with one scored upload (its note
    a corpus string too), finalized."""
    from challenge.flows.publish_release import publish_release
    from challenge.flows.score_submissions import finalize_challenge, score_submissions

    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    teams = [{"id": f"team-{i}", "name": text} for i, text in enumerate(TEAM_NAMES)]
    config = make_config(request.param, tmp_path, endpoint, teams=teams)
    stage(config, hostile_drop(tmp_path), "penguin-lab")
    publish_release(config_path=saved(config), release="r1")
    _, private, submissions = stores(config)
    key = pq.read_table(io.BytesIO(private.read_bytes("releases/r1/penguins/answers.parquet"))).select(["id", "label"])
    for i in range(len(teams)):
        labels = key["label"].to_pylist()
        labels[: i * 3] = ["Adelie"] * min(i * 3, len(labels))  # every team a different score
        out = io.BytesIO()
        pa_csv.write_csv(pa.table({"id": key["id"], "label": labels}), out)
        submissions.write_bytes(f"team-{i}/penguins/try.csv.message.json",  # the team's note, shown on its row
                                note_bytes(HOSTILE_TEXTS[-1 - i % len(HOSTILE_TEXTS)], out.getvalue()))
        submissions.write_bytes(f"team-{i}/penguins/try.csv", out.getvalue())
    score_submissions(config_path=saved(config))
    finalize_challenge(config_path=saved(config))
    return config


def test_the_card_results_csvs_page_and_terminal_carry_no_live_markup(finalized, capsys: pytest.CaptureFixture[str]) -> None:
    config = finalized
    public = stores(config)[0]
    card = public.read_bytes("releases/r1/penguins/README.md").decode()
    assert_inert(card)
    columns = card.split("## Columns", 1)[1].split("## Counts", 1)[0]
    assert rendered(columns).tags.count("tr") == 1 + 1 + 7 + 1  # header, id, the seven features, label
    results = public.read_bytes("leaderboard/final/results.md").decode()
    assert_inert(results)
    track = results.split("## Track: classification", 1)[1].split("Top three", 1)[0]
    assert rendered(track).tags.count("tr") == 1 + len(TEAM_NAMES)  # one row per team, whatever its name

    for key in ("leaderboard/task-penguins.csv", "leaderboard/track-classification.csv",
                "leaderboard/final/task-penguins.csv", "leaderboard/final/track-classification.csv"):
        rows = list(csv.reader(io.StringIO(public.read_bytes(key).decode())))
        assert len(rows) == 1 + len(TEAM_NAMES), key
        for cell in (c for row in rows for c in row):
            assert not cell.startswith(FORMULA_STARTS) or cell.lstrip("+-").replace(".", "", 1).isdigit(), (key, cell)

    page = Elements()
    html_page = public.read_bytes("leaderboard/index.html").decode()
    page.feed(html_page)
    assert "&lt;script&gt;alert(&#x27;card&#x27;)&lt;/script&gt;" in html_page  # the notes and names are on it, as text
    assert not {"script", "iframe", "img", "object", "embed"} & set(page.tags)
    assert "javascript:" not in " ".join(page.attributes) and not [a for a in page.attributes if a.startswith("on")]

    assert cli.main(["--config", saved(config), "leaderboard", "--tasks"]) == 0
    printed = capsys.readouterr().out
    assert not any(c in printed for c in ["\x1b", "\r", "\u202e", "\x07"])
    assert cli.main(["--config", saved(config), "leaderboard", "--format", "csv"]) == 0
    for cell in (c for row in csv.reader(io.StringIO(capsys.readouterr().out)) for c in row):
        assert not cell.startswith(FORMULA_STARTS) or cell.lstrip("+-").replace(".", "", 1).isdigit(), cell
