# -*- test-case-name: tests.test_options -*-
"""
Reading C{--auth-file} (README "Running a watch"): one line
C{user:password}, read once at start-up from a file that belongs to the
watch's user (or root), is readable by no one else, and is no symbolic
link.  No refusal ever quotes the file's content.
"""

from __future__ import annotations

import errno
import os
import stat

from ismon.core.requests import BasicCredentials
from ismon.core.text import quote

__all__ = ["MAX_AUTH_FILE_BYTES", "AuthFileError", "parse_auth_file", "read_auth_file"]

#: Bytes an auth file may hold: one line of a user and a password.
MAX_AUTH_FILE_BYTES = 4096


class AuthFileError(ValueError):
    """The auth file cannot be used; the message says why, on one line."""


def parse_auth_file(raw: bytes) -> BasicCredentials:
    """
    The credentials in an auth file's bytes.

    @raise AuthFileError: not one line C{user:password} of printable UTF-8
        text within L{MAX_AUTH_FILE_BYTES} (the message says which, and
        never quotes the content).
    """
    # Lines end at LF (CRLF too); a CR anywhere else is no line end but a
    # control character, refused below rather than cutting the password short.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Replacing the bad bytes would log in with another password: every
        # login refused, and a healthy server failed over.
        raise AuthFileError("must be UTF-8 text") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    user, colon, password = line.partition(":")
    if len(raw) > MAX_AUTH_FILE_BYTES or not colon or not user or not password:
        raise AuthFileError("must hold one line user:password")
    if any(not c.isprintable() for c in user + password):
        raise AuthFileError("must hold printable user:password")
    return BasicCredentials(user, password)


def read_auth_file(path: str) -> BasicCredentials:
    """
    Read the auth file at C{path}.

    @raise AuthFileError: it cannot be read or used; the message names the
        file and says why.
    """
    shown = quote(path, limit=300)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            # A link could be pointed elsewhere by whoever owns its folder.
            raise AuthFileError(
                f"--auth-file {shown} is a symbolic link: give the file itself"
            ) from None
        raise AuthFileError(f"--auth-file {shown} cannot be read: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if info.st_uid not in (os.geteuid(), 0):
            raise AuthFileError(
                f"--auth-file {shown} belongs to UID {info.st_uid}: it must be this user's or root's"
            )
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode) or mode & 0o177:
            raise AuthFileError(f"--auth-file {shown} has mode {mode:04o}: use 0600 or 0400")
        raw = os.read(fd, MAX_AUTH_FILE_BYTES + 1)
    except OSError as e:
        raise AuthFileError(f"--auth-file {shown} cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)
    try:
        return parse_auth_file(raw)
    except AuthFileError as e:
        raise AuthFileError(f"--auth-file {shown} {e}") from None
