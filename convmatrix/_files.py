"""Safe file writing: a temporary file in the target's directory, fsynced, then renamed.

Every file convmatrix writes (matrices, reports, figures) goes through :func:`atomic_write`:
the bytes go to a uniquely named temporary next to the target, are flushed and fsynced, and
the temporary is renamed onto the target with :func:`os.replace` (atomic on POSIX and
Windows). A failure at any point (an exception, ``KeyboardInterrupt``, a full disk) removes
the temporary and leaves the old target untouched; two writers of one path never share a
temporary, so the last rename wins and the target is always one complete file.

Temporaries are named ``.<target name>.<pid>-<random>.convmatrix-tmp`` (scratch directories
``.convmatrix-<pid>-<random>``): a later write into the same directory removes those whose
process is gone (a writer killed with ``kill -9``) and leaves those of running processes alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["TEMP_SUFFIX", "atomic_write", "remove_stale", "scratch_directory",
           "write_bytes", "write_text"]

TEMP_SUFFIX = ".convmatrix-tmp"
_TEMP = re.compile(r"^\..*\.(\d+)-[0-9a-f]+" + re.escape(TEMP_SUFFIX) + r"$")
_SCRATCH = re.compile(r"^\.convmatrix-(\d+)-[0-9a-f]+$")


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or we cannot tell: keep its files
    return True


def remove_stale(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries in ``directory`` left by writers that are no longer running.

    Returns the paths removed. Temporaries of running processes (concurrent writers) stay.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMP.match(name) or _SCRATCH.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        path = Path(directory) / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a binary stream whose bytes replace ``path`` only once all of them are on disk.

    On leaving the ``with`` block without an exception the stream is flushed, fsynced and
    renamed onto ``path``; on any exception (also ``KeyboardInterrupt``) the temporary is
    removed and ``path`` keeps its old content. Stale temporaries of dead writers in the same
    directory are removed first.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = pathlib.Path(folder) / "a.txt"
    ...     with atomic_write(target) as stream:
    ...         _ = stream.write(b"new")
    ...     target.read_bytes(), sorted(p.name for p in pathlib.Path(folder).iterdir())
    (b'new', ['a.txt'])
    """
    target = Path(path)
    directory = target.parent
    remove_stale(directory)
    temporary = _temporary_name(target)
    try:
        stream = open(temporary, "xb")
    except OSError as error:
        raise _naming(error, target) from None
    try:
        try:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        finally:
            stream.close()  # a failed close (a deferred write error) fails the write too
        if target.exists() and not target.is_symlink():
            with contextlib.suppress(OSError):
                os.chmod(temporary, target.stat().st_mode & 0o7777)
        else:
            _default_mode(temporary)
        try:
            os.replace(temporary, target)
        except OSError as error:
            raise _naming(error, target) from None
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_directory(directory)


def _naming(error: OSError, target: Path) -> OSError:
    """The error with the target's name (not the temporary's) in its message."""
    return type(error)(error.errno, f"cannot write {str(target)!r}: "
                                    f"{error.strerror or error}")


def _default_mode(path: Path) -> None:
    """The mode ``open(path, 'w')`` would have given (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as stream:
        stream.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``text`` atomically (see :func:`atomic_write`)."""
    return write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def scratch_directory(near: str | os.PathLike[str]) -> Iterator[Path]:
    """A scratch directory next to ``near`` (same file system), removed on leaving.

    Named ``.convmatrix-<pid>-<random>``, so a later call removes it if its process died.
    """
    directory = Path(near).parent
    remove_stale(directory)
    folder = directory / f".convmatrix-{os.getpid()}-{secrets.token_hex(4)}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
