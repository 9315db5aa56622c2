"""Files in a directory that someone else may write to: never follow a link, check what opened.

Under systemd the runtime directory belongs to the service user, so whoever controls that
account can plant ``lock -> /etc/shadow`` or a FIFO there before root runs ``pfrelay restore``.
Every file the relay or its commands create, write or touch in such a place is therefore
opened with ``O_NOFOLLOW|O_CLOEXEC`` (``O_NONBLOCK`` too, so a FIFO cannot hang the open),
checked with ``fstat`` (a regular file with one link, owned by one of the expected users),
and changed only through its fd (``futimens``, ``fchmod``). Files are replaced atomically
(a fresh temp file created with ``O_EXCL`` beside the target, ``fsync``, ``rename``, then
``fsync`` of the directory so the rename survives a crash). Errors are ``OSError`` with a
one-line ``strerror`` that says what was refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Collection, Optional, Tuple, Union

StrPath = Union[str, "os.PathLike[str]"]

#: Flags every open here adds: no link at the last component, no fd leak into ``ip``, no FIFO
#: hang (regular files ignore O_NONBLOCK).
SAFE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Refused(OSError):
    """What was opened is not what may be used here (a link, a FIFO, someone else's file)."""


def _refused(path: object, why: str) -> Refused:
    return Refused(errno.EPERM, f"refusing {path}: {why}")


def open_regular(
    path: StrPath,
    flags: int,
    mode: int = 0o600,
    *,
    owners: Optional[Collection[int]] = None,
    dir_fd: Optional[int] = None,
) -> int:
    """``os.open`` without following a link at ``path``; the fd of a checked regular file.

    Refused (``OSError``, the fd closed): a symbolic link, anything but a regular file, a file
    with more than one hard link (it is also somewhere else) and, when ``owners`` is given, a
    file none of them owns.
    """
    try:
        fd = os.open(path, flags | SAFE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(path, "it is a symbolic link; remove it") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refused(path, "not a regular file; remove it")
        if info.st_nlink > 1:
            raise _refused(path, f"it has {info.st_nlink} hard links; remove it")
        if owners is not None and info.st_uid not in owners:
            raise _refused(path, f"owned by uid {info.st_uid}; remove it")
    except BaseException:
        os.close(fd)
        raise
    return fd


def touch(path: StrPath, owners: Optional[Collection[int]] = None) -> None:
    """Create ``path`` (mode 0600) if missing and set its times to now, through the fd."""
    fd = open_regular(path, os.O_WRONLY | os.O_CREAT, 0o600, owners=owners)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def open_dir(path: StrPath) -> int:
    """An fd of the directory ``path`` (a symlink at its last component is refused)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise _refused(path, "the directory is a symbolic link; name the real one") from None
        raise


def dir_owner(dir_fd: int) -> Optional[Tuple[int, int]]:
    """(uid, gid) of the directory when root works in a directory another user owns, or None.

    The runtime directory belongs to the service user (``RuntimeDirectory=`` with ``User=``):
    a lock or ledger that ``sudo pfrelay restore`` creates there must stay the relay's, or
    the relay, unable to read its ledger, can never write it again.
    """
    if os.geteuid() != 0:
        return None
    info = os.fstat(dir_fd)
    return None if info.st_uid == 0 else (info.st_uid, info.st_gid)


def replace(path: Path, data: bytes, mode: int, *, to_dir_owner: bool = False) -> None:
    """Replace ``path`` atomically with ``data`` and ``mode``; the temp file never follows a link.

    The temp file is ``.<name>.<random>.tmp`` in the same directory (``O_EXCL``: a planted
    link or file with that name makes the open fail instead of being written through), gets
    ``mode`` with ``fchmod`` and is ``fsync``ed before the rename; the directory is ``fsync``ed
    after it. A link at ``path`` itself is replaced, not followed (``rename`` never follows).
    With ``to_dir_owner``, a file root writes into another user's directory is given to that
    user (``dir_owner``).
    """
    dir_fd = open_dir(path.parent)
    try:
        owner = dir_owner(dir_fd) if to_dir_owner else None
        tmp = None
        for _ in range(8):
            name = f".{path.name}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=dir_fd,
                )
            except FileExistsError:
                continue
            tmp = name
            break
        if tmp is None:
            raise OSError(errno.EEXIST, f"cannot create a temp file in {path.parent}")
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if owner is not None:
                    os.fchown(fd, *owner)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(os.path.join(path.parent, tmp), path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
