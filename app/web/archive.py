"""Zipped run folders: written for download, and unpacked safely when a visitor loads one.

``safe_extract`` refuses what a hostile archive could do: absolute paths, ``..``
members, links and special files, too many members, a total unpacked size over the
cap (counted while reading, not trusted from the archive's directory), large members
whose compression ratio betrays a zip bomb, and NPZ members whose arrays would unpack past
the cap (read from their zip and ``.npy`` headers: ``core.iofiles.check_npz``). Only flat run-folder files with the
expected names and suffixes are written.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from core.config import ConfigError
from core.iofiles import check_npz

ALLOWED_SUFFIXES = (".json", ".csv", ".npz", ".png")
MAX_MEMBERS = 32
MAX_DEPTH = 4
MAX_RATIO = 1000
RATIO_FLOOR = 8 << 20
CHUNK = 1 << 16


def write_zip(folder: Path, target: Path, extra: dict[str, Path] | None = None,
              skip: tuple[str, ...] = ()) -> Path:
    """Zips the files directly in ``folder`` (but not those named in ``skip``; plus ``extra``: name -> path)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.name not in skip:
                zf.write(path, arcname=f"run/{path.name}")
        for name, path in (extra or {}).items():
            zf.write(path, arcname=f"run/{name}")
    return target


def safe_extract(archive: Path, dest: Path, max_bytes: int) -> Path:
    """Unpacks a zipped run folder into ``dest``; returns the folder holding ``config.json``.

    Raises ConfigError (key ``run archive``) with a one-line reason for anything unsafe.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            _check_members(members)
            total = 0
            for member in members:
                total = _extract_one(zf, member, dest, total, max_bytes)
    except zipfile.BadZipFile:
        raise ConfigError("run archive", "is not a readable .zip file") from None
    except (OSError, EOFError, RuntimeError, NotImplementedError) as err:
        raise ConfigError("run archive", f"could not be unpacked ({type(err).__name__})") from None
    configs = sorted(dest.rglob("config.json"))
    if not configs:
        raise ConfigError("run archive", "has no config.json; zip a run folder (config.json, state.npz, ...)")
    return configs[0].parent


def _check_members(members: list[zipfile.ZipInfo]) -> None:
    if len(members) > MAX_MEMBERS:
        raise ConfigError("run archive", f"has {len(members)} files; a run folder has at most {MAX_MEMBERS}")
    for m in members:
        _safe_name(m.filename)
        kind = stat.S_IFMT(m.external_attr >> 16)
        if kind and kind != stat.S_IFREG:
            raise ConfigError("run archive", f"member {m.filename[:60]!r} is a link or special file")
        if m.flag_bits & 0x1:
            raise ConfigError("run archive", "is encrypted")


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or ":" in name:
        raise ConfigError("run archive", f"member {name[:60]!r} has an absolute path")
    if any(part in ("..", "") for part in path.parts):
        raise ConfigError("run archive", f"member {name[:60]!r} points outside the archive ('..')")
    if len(path.parts) > MAX_DEPTH:
        raise ConfigError("run archive", f"member {name[:60]!r} is nested too deep; zip one run folder")
    if path.suffix.lower() not in ALLOWED_SUFFIXES:
        allowed = ", ".join(ALLOWED_SUFFIXES)
        raise ConfigError("run archive", f"member {name[:60]!r}: only {allowed} files belong in a run")
    return path


def _extract_one(zf: zipfile.ZipFile, member: zipfile.ZipInfo, dest: Path, total: int, max_bytes: int) -> int:
    rel = _safe_name(member.filename)
    if member.file_size > RATIO_FLOOR and member.file_size > MAX_RATIO * max(member.compress_size, 1):
        raise ConfigError("run archive", f"member {member.filename[:60]!r} is compressed suspiciously well (zip bomb?)")
    target = dest.joinpath(*rel.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(member) as src, open(target, "xb") as out:
        while chunk := src.read(CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise ConfigError("run archive", f"unpacks to more than {max_bytes // 2**20} MiB")
            out.write(chunk)
    if rel.suffix.lower() == ".npz":  # the arrays inside: shapes and sizes from their headers, before any load
        check_npz(target, f"run archive: {rel.name}", max_bytes)
    return total
