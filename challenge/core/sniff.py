"""What a file's first bytes say it is when it is not the UTF-8 text its name promises.

A `.csv` that is really UTF-16 text, gzip or ZIP bytes, a Parquet file or a workbook makes a CSV reader
fail with a message about something else (a mangled header, "universal-newline mode"). These tell the
real problem, so that a message can say what to do: submissions (tasks/scoring/submissions.py) and drops use them.
"""

from __future__ import annotations

import re

# (leading bytes, what the file is), longest first where one starts another
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "UTF-32 text"),
    (b"\x00\x00\xfe\xff", "UTF-32 text"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx or .ods workbook is one)"),
    (b"PK\x05\x06", "a ZIP archive (an empty one)"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"(\xb5/\xfd", "zstd-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PAR1", "a Parquet file"),
    (b"ARROW1", "an Arrow IPC (Feather) file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
)
_BZIP2 = re.compile(rb"^BZh[1-9]1AY&SY")
TEXT_KINDS = ("UTF-16 text", "UTF-32 text")  # text in another encoding: saving it as UTF-8 is the fix
PARQUET = "a Parquet file"
NUL_BYTES = "binary data (it holds NUL bytes)"


def binary_kind(head: bytes) -> str | None:
    """What the file starting with `head` is, when it is not plain 8-bit text (UTF-8, ASCII, Latin-1): e.g.
    "UTF-16 text", "gzip-compressed", "a Parquet file"; None for text."""
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if _BZIP2.match(head):
        return "bzip2-compressed"
    sample = head[:4096]
    if b"\x00" not in sample:
        return None
    even, odd = sample[0::2], sample[1::2]  # UTF-16 of ASCII text: every other byte is NUL
    if len(sample) >= 4 and (odd.count(0) > 0.4 * len(odd) or even.count(0) > 0.4 * len(even)):
        return "UTF-16 text"
    return NUL_BYTES
