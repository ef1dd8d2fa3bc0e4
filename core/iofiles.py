"""Files: atomic writes, bounded reads, and NPZ members checked before they are unpacked.

Writes go to a temporary file in the same folder, then ``os.replace``; a process killed
mid-write leaves such a temporary file behind, which :func:`remove_stale_temps` deletes
at the next save or load of that folder. Reads of user files go through
:func:`regular_file` (a regular file, not a FIFO, device or folder; size checked before
reading) and :func:`npz_members` (each array's declared shape and size read from the zip
and ``.npy`` headers, before anything is decompressed).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from core.config import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")
"""The names :func:`atomic_path` gives its temporary files (``.final.npz.ab12cd34.tmp.npz``)."""
NPY_HEADER_MAX = 1 << 16
RUN_FILES = ("config.json", "metrics.csv", "final.npz", "state.npz", "state.json", "nfa.png", "heatmaps.png")
"""The files a run folder holds; nothing else is ever written into one (but temporary files mid-save)."""


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it over ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_npz(path: Path | str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez without pickles (object arrays are refused by the reader anyway)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file that :func:`atomic_path` made."""
    return _TEMP.match(name) is not None


def foreign_entries(folder: Path | str, own: tuple[str, ...] = RUN_FILES) -> list[str]:
    """Names in ``folder`` that are neither in ``own`` nor temporary files of an interrupted save."""
    return sorted(e.name for e in os.scandir(folder) if e.name not in own and not is_temp_name(e.name))


def remove_stale_temps(folder: Path | str, names: tuple[str, ...] | None = None) -> list[str]:
    """Deletes the temporary files an interrupted save left in ``folder`` (for ``names`` only, if given)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and (names is None or m.group("name") in names) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                pass
    return removed


# -- bounded reads ---------------------------------------------------------------------

def regular_file(path: Path | str, key: str, max_bytes: int, what: str = "file") -> int:
    """Checks that ``path`` is a regular file of at most ``max_bytes``; returns its size.

    A FIFO, a device (``/dev/zero``), a socket or a folder is refused with one line naming
    ``key``, without opening it (opening a FIFO would block).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(key, f"no such file: {str(path)!r}") from None
    except OSError as err:
        raise ConfigError(key, f"cannot read {str(path)!r}: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(key, f"{str(path)!r} is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise ConfigError(key, f"{str(path)!r} is {kind}, not a regular {what}")
    if st.st_size > max_bytes:
        raise ConfigError(key, f"{str(path)!r} has {_size(st.st_size)}; at most {_size(max_bytes)} is read")
    return st.st_size


def read_bytes_bounded(path: Path | str, key: str, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (never more are read, even if it grows)."""
    regular_file(path, key, max_bytes, what)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise ConfigError(key, f"cannot read {str(path)!r}: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise ConfigError(key, f"{str(path)!r} has more than {_size(max_bytes)}")
    return data


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**17 else f"{n} bytes (under 0.1 MiB)"


def npz_members(path: Path | str, key: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Array name -> (shape, dtype) of an NPZ, from its headers only (nothing large is decompressed).

    Refuses (ConfigError naming ``key``) a file that is not a zip of ``.npy`` members, object
    arrays (pickles), and members whose zip header and ``.npy`` header disagree on the size.
    """
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ConfigError(key, f"member {info.filename[:40]!r} is not a .npy array")
                shape, dtype = _npy_header(zf, info, key)
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > info.file_size:
                    raise ConfigError(key, f"array {info.filename[:-4][:40]!r} declares {_size(declared)} "
                                           f"but its zip entry holds {_size(info.file_size)}")
                out[info.filename[:-4]] = (shape, dtype)
    except ConfigError:
        raise
    except zipfile.BadZipFile:
        raise ConfigError(key, "is not a readable NPZ file (not a zip archive)") from None
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as err:
        raise ConfigError(key, f"is not a readable NPZ file ({type(err).__name__})") from None
    return out


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> tuple[tuple[int, ...], np.dtype]:
    with zf.open(info) as f:
        head = f.read(NPY_HEADER_MAX)  # at most 64 KiB decompressed, whatever the member claims
    import io

    buf = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(buf)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = reader(buf, max_header_size=NPY_HEADER_MAX)
    except ValueError:
        raise ConfigError(key, f"member {info.filename[:40]!r} is not a readable .npy array") from None
    if dtype.hasobject:
        raise ConfigError(key, f"array {info.filename[:-4][:40]!r} holds Python objects; they are not allowed (no pickles)")
    return tuple(int(s) for s in shape), dtype


def check_npz(path: Path | str, key: str, max_bytes: int) -> int:
    """Checks an NPZ from its headers: no object arrays, declared sizes adding up to at most ``max_bytes``."""
    members = npz_members(path, key)
    total = sum(int(np.prod(s, dtype=object)) * d.itemsize for s, d in members.values())
    if total > max_bytes:
        raise ConfigError(key, f"unpacks to {_size(total)}; at most {_size(max_bytes)}")
    return total


def read_npz(path: Path | str, key: str = "file", max_bytes: int = 1 << 30,
             expect: dict[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Loads every array of an NPZ, never unpickling, after checking the headers.

    The declared sizes must add up to at most ``max_bytes``; names in ``expect`` must have
    exactly the shape given there.
    """
    check_npz(path, key, max_bytes)
    members = npz_members(path, key)
    for name, shape in (expect or {}).items():
        if name in members and members[name][0] != tuple(shape):
            raise ConfigError(key, f"array {name!r} has shape {members[name][0]}, expected {tuple(shape)}")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ConfigError(key, f"is damaged ({type(err).__name__}: {str(err)[:80]})") from None
