"""Files a command writes with ``--out``: they appear whole or not at all.

The content is written to a temporary file beside the target and moved into
place only once it is complete, so an error (an unknown run, a full disk)
leaves the target as it was and nothing behind. An existing target (or a
symbolic link) needs ``--force``; a link is then replaced, never written
through. Without ``--force`` the file is linked into place, which fails if
something appeared at the path meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

PUBLIC_MODE = 0o644
PRIVATE_MODE = 0o600


def check_output(path: Path, *, force: bool = False, option: str = "--out") -> Path:
    """The folder ``path`` will be written in, checked before any work; ``InvalidInput`` says why not."""
    from ..domain import InvalidInput

    if path.is_dir():
        raise InvalidInput(option, f"{path} is a folder; give a file name")
    if (path.is_symlink() or path.exists()) and not force:
        raise InvalidInput(option, f"{path} already exists: choose another file, or add --force to replace it")
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInput(option, f"{path}: folder {folder} does not exist (create it first)")
    return folder


@contextlib.contextmanager
def atomic_output(
    path: Path, *, force: bool = False, option: str = "--out", binary: bool = False, mode: int = PUBLIC_MODE
) -> Iterator[IO[Any]]:
    """A stream whose content becomes ``path`` only when the block ends without an error."""
    folder = check_output(path, force=force, option=option)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        opened: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        with opened as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if something appeared at ``path`` meanwhile
            os.unlink(temporary)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_file(path: Path, data: bytes, *, force: bool = False, private: bool = False, option: str = "--out") -> None:
    """Write ``data`` to ``path`` as ``atomic_output`` does; ``private`` files are 0600."""
    with atomic_output(path, force=force, option=option, binary=True,
                       mode=PRIVATE_MODE if private else PUBLIC_MODE) as stream:
        stream.write(data)
