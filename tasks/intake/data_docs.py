"""The gate's Data Docs, made to open offline (no network, no CDN).

GX's pages load Bootstrap, jQuery, bootstrap-table and Font Awesome from CDNs: without a network its
index is an empty table (bootstrap-table draws it) and every page is unstyled, the status icons blank.
After GX has written them, each page's CDN tags are replaced by one small stylesheet of ours
(`static/offline.css`, status icons as characters) and the remote logo by GX's local copy; index.html
becomes a plain page: each table's validation (status, counts, link), its suite, and the checks that
were skipped. No third-party file is copied.
"""

from __future__ import annotations

import html
import re
from pathlib import Path, PurePosixPath
from typing import Any

from challenge.core import catalog
from challenge.expectations.checks import CheckResult

STYLESHEET = "static/offline.css"
LOGO = PurePosixPath("static", "images", "logo-long.png").as_posix()  # GX's own copy of its logo, in the Data Docs
CDN_TAG = re.compile(r'<(?:link|script)\b[^>]*?\b(?:href|src)\s*=\s*"https?://[^"]*"[^>]*>(?:\s*</script>)?', re.IGNORECASE)
REMOTE_LOGO = re.compile(r'src="https://great-expectations-web-assets\.[^"]*"')
REMOTE_BACKGROUND = re.compile(r"url\(\s*'https?://[^']*'\s*\)")  # the dark theme's logo: no image rather than a request
CSS = """\
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; margin: 0; background: #fafbfc; }
a { color: #0b5cad; } h1, h2, h3, h4, h5, h6, .h6 { margin: .6em 0 .3em; }
.container-fluid { padding: 1rem 2rem; } .row { display: flex; flex-wrap: wrap; margin: 0; }
.col-12, .col-sm-12, .col-xs-12 { flex: 0 0 100%; } .col-6 { flex: 0 0 50%; }
.col-md-2, .col-lg-2 { flex: 0 0 18%; max-width: 18%; } .col-md-10, .col-lg-10 { flex: 0 0 80%; max-width: 80%; padding-left: 2%; }
.navbar { display: flex; align-items: center; gap: 1rem; padding: .5rem 1rem; background: #fff; border-bottom: 1px solid #d0d7de; }
.navbar img { height: 30px; } .sticky-top { position: sticky; top: 0; z-index: 2; }
.nav, .breadcrumb { list-style: none; padding: 0; margin: 0; display: flex; gap: .5rem; flex-wrap: wrap; }
.nav { flex-direction: column; } .breadcrumb-item + .breadcrumb-item::before { content: "/ "; color: #888; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; margin-bottom: 1rem; }
.card-header { background: #f6f8fa; padding: .5rem .75rem; border-bottom: 1px solid #d0d7de; font-weight: 600; }
.card-body { padding: .75rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 .8rem; background: #fff; }
th, td { border: 1px solid #d8dee4; padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.fas, .far { font-style: normal; font-weight: 700; } .fas::before, .far::before { content: "•"; }
.fa-check-circle::before, .fa-check::before { content: "\\2714"; color: #1a7f37; }
.fa-times::before, .fa-times-circle::before { content: "\\2716"; color: #cf222e; }
.fa-exclamation-triangle::before { content: "\\26A0"; color: #9a6700; }
.text-success { color: #1a7f37; } .text-danger { color: #cf222e; } .text-warning { color: #9a6700; }
.badge { display: inline-block; padding: 0 .35em; border-radius: 4px; background: #eaeef2; font-family: ui-monospace, monospace; }
.alert-secondary { background: #f6f8fa; border-radius: 4px; padding: .25rem .5rem; }
.btn-group-toggle, .ge-navigation-sidebar-container .d-none { display: none; }
.offline-note { color: #57606a; } .failed { color: #cf222e; font-weight: 700; } .passed { color: #1a7f37; font-weight: 700; }
.skipped { color: #9a6700; font-weight: 700; } footer { display: none; }
"""


def _link(path: Path, root: Path, text: str) -> str:
    return f'<a href="{html.escape(path.relative_to(root).as_posix())}">{html.escape(text)}</a>'


def _offline_page(page: Path, root: Path) -> None:
    """One GX page without its CDN tags, with our stylesheet and the local logo."""
    up = "../" * (len(page.relative_to(root).parts) - 1)
    text = REMOTE_BACKGROUND.sub("none", CDN_TAG.sub("", page.read_text(encoding="utf-8")))
    text = REMOTE_LOGO.sub(f'src="{up}{LOGO}"', text)
    page.write_text(text.replace("</head>", f'<link rel="stylesheet" href="{up}{STYLESHEET}">\n</head>', 1), encoding="utf-8")


def _index(root: Path, title: str, validated: list[tuple[str, Any]], skipped: list[CheckResult],
           files: dict[str, str]) -> str:
    e = html.escape
    rows = []
    for table, result in validated:
        suite = str(result.suite_name)
        page = next(iter(sorted((root / "validations" / suite).rglob("*.html"))), None)
        suite_page = root / "expectations" / f"{suite}.html"
        stats = result.statistics or {}
        status = '<span class="passed">✔ passed</span>' if result.success else '<span class="failed">✖ failed</span>'
        rows.append(
            f"<tr><td>{e(files.get(table, table))}</td><td>{status}</td>"
            f"<td>{stats.get('successful_expectations', '?')} of {stats.get('evaluated_expectations', '?')}</td>"
            f"<td>{_link(page, root, 'validation result') if page else ''}</td>"
            f"<td>{_link(suite_page, root, suite) if suite_page.is_file() else e(suite)}</td></tr>")
    body = ["<table><tr><th>file</th><th>status</th><th>expectations met</th><th>details</th><th>suite</th></tr>",
            *rows, "</table>"] if rows else ["<p>No table could be validated by Great Expectations.</p>"]
    if skipped:
        body += ["<h2>Not checked</h2><p>These checks could not run on this drop; fix what they name and drop it again.</p>",
                 "<table><tr><th>file</th><th>column</th><th>check</th><th>why</th></tr>",
                 *(f"<tr><td>{e(files.get(c.table, c.table))}</td><td>{e(c.column or '')}</td><td>{e(c.check)}</td>"
                   f'<td><span class="skipped">not checked:</span> {e(c.skipped)}</td></tr>' for c in skipped), "</table>"]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Data Docs: {e(title)}</title>\n'
            f'<link rel="stylesheet" href="{STYLESHEET}"></head>\n<body><nav class="navbar">'
            f'<img src="{LOGO}" alt="Great Expectations"><strong>Data Docs: {e(title)}</strong></nav>\n'
            '<div class="container-fluid"><p class="offline-note">Static pages: they open from a local folder, '
            f'without a network. The gate\'s report (<a href="../{catalog.REPORT_MARKDOWN}">{catalog.REPORT_MARKDOWN}</a> '
            'beside this folder) lists every check, those outside Great Expectations too.</p>\n' + "\n".join(body) + "\n</div></body></html>\n")


def make_offline(docs_dir: Path, title: str, validated: list[tuple[str, Any]], skipped: list[CheckResult],
                 files: dict[str, str]) -> None:
    """Rewrite the Data Docs under `docs_dir` to open offline, and write their index (see the module).
    `validated`: (table, GX validation result) pairs; `files`: table → the contributor's file name."""
    (docs_dir / STYLESHEET).parent.mkdir(parents=True, exist_ok=True)
    (docs_dir / STYLESHEET).write_text(CSS, encoding="utf-8")
    for page in docs_dir.rglob("*.html"):
        if page != docs_dir / "index.html":
            _offline_page(page, docs_dir)
    for sheet in (docs_dir / "static" / "styles").glob("*.css"):
        sheet.write_text(REMOTE_BACKGROUND.sub("none", sheet.read_text(encoding="utf-8")), encoding="utf-8")
    (docs_dir / "index.html").write_text(_index(docs_dir, title, validated, skipped, files), encoding="utf-8")
