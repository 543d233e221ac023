"""A team's note on an upload (`challenge submit FILE --message TEXT`): `<file>.message.json` beside it.

`challenge submit` uploads the note first, then the file, and the note names the SHA-256 of the bytes
it describes: the scorer keeps it (as the record's `description`, shown in the feedback, history.json
and on the team's leaderboard row) only for those bytes, so a file uploaded again without a note does
not inherit the old one. The note is the team's own text: it is read bounded, cut to one line of
MAX_DESCRIPTION characters, and control characters become spaces.
"""

from __future__ import annotations

import hashlib
import json
import re

from challenge.core import catalog
from challenge.core.errors import ChallengeError
from challenge.core.storage import Storage
from challenge.tasks.scoring.submissions import Submission

MAX_DESCRIPTION = 300  # characters kept of a note
MAX_NOTE_BYTES = 4096  # a note file larger than this is not read
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clean_description(text: str) -> str:
    """One line: control characters as spaces, runs of spaces as one, at most MAX_DESCRIPTION characters."""
    line = " ".join(_CONTROL.sub(" ", text).split())
    return line if len(line) <= MAX_DESCRIPTION else line[:MAX_DESCRIPTION - 1] + "…"


def check_message(text: str) -> str:
    """A message given to `challenge submit`: refused when it would be cut or changed, so the team sees it as stored."""
    cleaned = clean_description(text)
    if not cleaned:
        raise ChallengeError("--message is empty: describe the submission in a few words, or leave --message out")
    if len(text) > MAX_DESCRIPTION:
        raise ChallengeError(f"--message is {len(text)} characters; at most {MAX_DESCRIPTION} are kept: shorten it")
    return cleaned


def note_bytes(message: str, data: bytes) -> bytes:
    """The note file for an upload of `data`."""
    return json.dumps({"message": message, "sha256": hashlib.sha256(data).hexdigest()}).encode()


def read_description(submissions: Storage, sub: Submission, data: bytes) -> str | None:
    """The note on `sub`, when one was listed and it describes these bytes; None otherwise (never an error:
    a broken note only costs the description)."""
    if not sub.has_message:
        return None
    try:
        raw = submissions.read_limited(catalog.message_key(sub.key), MAX_NOTE_BYTES)
        note = json.loads(raw) if len(raw) <= MAX_NOTE_BYTES else None
    except (ChallengeError, ValueError):
        return None
    if not isinstance(note, dict) or not isinstance(note.get("message"), str):
        return None
    if note.get("sha256") != hashlib.sha256(data).hexdigest():
        return None
    return clean_description(note["message"]) or None
