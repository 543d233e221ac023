"""Unpack a team's algorithm archive (`<name>.zip`, main.py at its top) safely: every entry is checked before
anything is written. Refused, each with the entry named: absolute paths, `..`, backslashes or control
characters in a name, links and other special files, encrypted entries, the same path twice, more files or
more bytes once unpacked than the bounds (challenge.yaml `algorithms:`), an archive over its size bound, and
an archive without main.py at its top. Sizes are counted while writing too, so a header that lies about them
is caught."""

from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from challenge.core.config import AlgorithmSettings
from challenge.core.errors import AlgorithmRefused
from challenge.tasks.scoring.submissions import shown

MAIN = "main.py"
CHUNK = 1 << 20
_MB = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """The bounds an archive is unpacked under."""

    archive_bytes: int
    unpacked_bytes: int
    files: int

    @classmethod
    def of(cls, settings: AlgorithmSettings) -> ArchiveLimits:
        return cls(int(settings.max_archive_mb * _MB), int(settings.max_unpacked_mb * _MB), settings.max_files)


def entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why one entry may not be unpacked, or None."""
    name = info.filename
    mode = info.external_attr >> 16
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if "\\" in name:
        return "holds a backslash (zip it on a system that writes / between folders)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds a control character in its name"
    if any(part in ("..", ".") for part in PurePosixPath(name).parts):
        return "has a '..' or '.' part: every file must stay inside the archive's folder"
    if stat.S_ISLNK(mode):
        return "is a symbolic link: put the file itself in the archive"
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # (no type bits: a plain file)
        return "is a special file (device, pipe or socket)"
    if info.flag_bits & 0x1:
        return "is encrypted: archives must not be password-protected"
    return None


def unpack_archive(archive: Path, to: Path, limits: ArchiveLimits) -> list[str]:
    """Unpack `archive` into the empty folder `to`; returns the files' paths. AlgorithmRefused, naming the
    entry and what to change, when anything in it is unsafe or over a bound (then nothing is left in `to`)."""
    where = archive.name
    size = archive.stat().st_size
    if size > limits.archive_bytes:
        raise AlgorithmRefused(f"{where} is {size / _MB:.1f} MB; algorithm archives are at most "
                               f"{limits.archive_bytes / _MB:g} MB (algorithms.max_archive_mb): leave data and model "
                               "files out, the algorithm trains on the task's files")
    try:
        with zipfile.ZipFile(archive) as zipped:
            infos = zipped.infolist()
            files = _checked_entries(infos, where, limits)
            to.mkdir(parents=True, exist_ok=True)
            try:
                _extract(zipped, files, to, where, limits)
            except BaseException:
                shutil.rmtree(to, ignore_errors=True)
                raise
    except zipfile.BadZipFile as error:
        raise AlgorithmRefused(f"{where} is not a readable zip archive ({error}): zip main.py and its helper files "
                               "again") from None
    except NotImplementedError as error:  # e.g. AES encryption, or a compression method zipfile lacks
        raise AlgorithmRefused(f"{where}: {error}; zip it with plain deflate compression") from None
    return [info.filename for info in files]


def _checked_entries(infos: list[zipfile.ZipInfo], where: str, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    seen: set[str] = set()
    for info in infos:
        problem = entry_problem(info)
        if problem:
            raise AlgorithmRefused(f"{where}: the entry {shown(info.filename)!r} {problem}")
        key = info.filename.rstrip("/")
        if key in seen:
            raise AlgorithmRefused(f"{where}: {shown(key)!r} is in the archive twice: keep one")
        seen.add(key)
    files = [info for info in infos if not info.is_dir()]
    if len(files) > limits.files:
        raise AlgorithmRefused(f"{where} holds {len(files)} files; at most {limits.files} (algorithms.max_files)")
    declared = sum(info.file_size for info in files)
    if declared > limits.unpacked_bytes:
        raise AlgorithmRefused(f"{where} unpacks to {declared / _MB:.1f} MB; at most {limits.unpacked_bytes / _MB:g} MB "
                               "(algorithms.max_unpacked_mb)")
    if MAIN not in seen:
        tops = {PurePosixPath(info.filename).parts[0] for info in infos}
        inside = [name for name in seen if PurePosixPath(name).name == MAIN]
        hint = (f"; it has {shown(inside[0])!r}: zip the contents of that folder, not the folder" if inside and len(tops) == 1
                else "")
        raise AlgorithmRefused(f"{where} has no {MAIN} at its top{hint}. The runner starts `python {MAIN} --input IN "
                               "--output OUT` (docs/contract.md)")
    return files


def _extract(zipped: zipfile.ZipFile, files: list[zipfile.ZipInfo], to: Path, where: str, limits: ArchiveLimits) -> None:
    written = 0
    for info in files:
        target = to.joinpath(*PurePosixPath(info.filename).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipped.open(info) as source, open(target, "xb") as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > limits.unpacked_bytes:  # (zipfile stops at the declared size; counted anyway)
                    raise AlgorithmRefused(f"{where} unpacks to more than {limits.unpacked_bytes / _MB:g} MB "
                                           "(algorithms.max_unpacked_mb)")
                out.write(chunk)
        target.chmod(0o644)
