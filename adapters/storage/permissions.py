"""Store files are private: the folder 0700, the files 0600, unless asked otherwise.

A store holds everything its runs were told, so a new store's folder is created
0700 and its file 0600 (``RUNJOURNAL_FILE_MODE=0640`` shares them with the
group: the folder then gets 0750). SQLite gives its ``-wal`` and ``-shm``
files the mode of the database file, so creating that file first is enough.
Existing folders and files are left as they are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from ...domain import InvalidInput

DEFAULT_FILE_MODE = 0o600


def file_mode(environ: Mapping[str, str] | None = None) -> int:
    """The mode of new store files: ``$RUNJOURNAL_FILE_MODE`` (octal), else 0600."""
    text = (os.environ if environ is None else environ).get("RUNJOURNAL_FILE_MODE", "")
    if not text:
        return DEFAULT_FILE_MODE
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o666 or not mode & 0o600 == 0o600:
        raise InvalidInput("RUNJOURNAL_FILE_MODE", f"must be an octal mode the owner can read and write, "
                           f"such as 0600 or 0640 (got {text!r})")
    return mode


def folder_mode(mode: int) -> int:
    """The folder mode that goes with a file mode: execute wherever read is allowed."""
    return mode | ((mode & 0o444) >> 2)


def private_folder(path: Path, mode: int = DEFAULT_FILE_MODE) -> None:
    """Create ``path`` (and missing parents) with the folder mode for ``mode``; an existing folder is left as it is."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True, mode=folder_mode(mode))
    os.chmod(path, folder_mode(mode))  # mkdir's mode is filtered by the umask


def private_file(path: Path, mode: int = DEFAULT_FILE_MODE) -> None:
    """Create ``path`` empty with ``mode`` if it does not exist yet (before SQLite opens it)."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
        try:
            os.fchmod(fd, mode)  # os.open's mode is filtered by the umask
        finally:
            os.close(fd)
