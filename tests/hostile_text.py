"""The hostile corpus of words: what a contributor (task.yaml) or a team (display name, file name, FINAL line,
message) may write, each meant to become markup, a link, a table break, a formula or an escape sequence in
some output. tests/test_inert_outputs.py feeds every output the same strings."""

HOSTILE_TEXTS = [
    "<script>alert('card')</script>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<img src=x onerror=alert(1)>",
    "[click me](javascript:alert(1))",
    "![tracker](https://evil.example/pixel.png)",
    "<https://evil.example/autolink>",
    "line one\n# a heading\n\n| injected | row |",
    "a | b | c",
    "**bold** _em_ `code` ~~strike~~",
    "=HYPERLINK(\"https://evil.example\",\"click\")",
    "+SUM(A1:A9)",
    "-2+3",
    "@cmd",
    "\tTab first",
    "\x1b[31mred\x1b[0m and \x1b]0;title\x07",
    "carriage\rreturn",
    "right-to-left \u202eevil\u202c override",
    "&lt;already escaped&gt; &amp;",
    "<a href='javascript:alert(1)'>x</a>",
    "\\`backslash\\` \\| escaped pipe",
]

# challenge.yaml refuses a display name with a line break or a control character (tests/test_config.py);
# the teams are named with every other string of the corpus.
TEAM_NAMES = [text for text in HOSTILE_TEXTS if not any(ord(c) < 32 or ord(c) == 127 for c in text)]
