"""Text that others wrote, made inert for each kind of output it reaches (one function per kind).

Contributors write task.yaml (title, description, licence, column descriptions); teams choose display
names, file names, FINAL lines and submission messages. None of it may become markup, a link, a table
break, a spreadsheet formula or a terminal escape sequence in what the product writes:

- markdown (dataset cards, gate and results reports, Prefect markdown artifacts): `markdown_text`,
  `markdown_code`;
- HTML (leaderboard page, results report): `html_text`;
- CSV (leaderboard exports, opened in spreadsheets): `csv_cell`;
- the terminal and logs: `terminal_text`.
"""

from __future__ import annotations

import html
import re

_MARKDOWN_PUNCTUATION = frozenset("\\`*_[]#|~<>!")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # bidi overrides too
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # fullwidth forms too
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def one_line(text: object) -> str:
    """`text` on one line: control characters and line breaks as spaces, runs of white space as one."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def markdown_text(text: object) -> str:
    """Inert markdown on one line (safe in a paragraph, a heading or a table cell): no raw HTML (`<`, `>`,
    `&` as entities), no emphasis, link, image, code span, heading or table break (punctuation escaped)."""
    line = one_line(text).replace("&", "&amp;")
    return "".join("&lt;" if c == "<" else "&gt;" if c == ">" else f"\\{c}" if c in _MARKDOWN_PUNCTUATION else c
                   for c in line)


def markdown_code(text: object) -> str:
    """A code span that no backtick or pipe in `text` can end or break (for paths and names shown verbatim;
    a backtick in them is shown as `'`)."""
    line = one_line(text).replace("`", "'").replace("|", "\\|")
    return f"`{line}`" if line else ""


def html_text(text: object) -> str:
    """Escaped for HTML text and quoted attribute values."""
    return html.escape(one_line(text), quote=True)


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text, never runs: a string starting like a formula gets a `'`
    (OWASP's advice); numbers, and text that is a plain number, stay as they are."""
    if not isinstance(value, str) or not value or _NUMBER.match(value):
        return value
    text = _CONTROL.sub(" ", value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def terminal_text(text: object, limit: int = 300, lines: bool = False) -> str:
    """For the terminal or a log line: control characters (escape sequences, carriage returns, bidi
    overrides) as `?`, on one line (or, with `lines`, keeping its line breaks), cut to `limit` characters."""
    line = _CONTROL.sub("?", str(text)).replace("\t", " ")
    line = line if lines else line.replace("\n", "?")
    return line if len(line) <= limit else line[:limit - 1] + "…"
