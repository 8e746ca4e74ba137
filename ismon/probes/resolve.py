# -*- test-case-name: tests.test_probe -*-
"""
Name resolution for a probe: getaddrinfo in a thread of its own, so that
message 81 can carry getaddrinfo's error number, and so that a lookup
stuck behind a dead name server never holds up the reactor or its
shutdown.  Literal addresses need no thread.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed

from ismon.core.resources import MONITOR_ERRNOS, ThreadUnavailable, start_thread

__all__ = [
    "MAX_PENDING_LOOKUPS",
    "Address",
    "ResolveError",
    "Resolver",
    "ResolverUnavailable",
    "system_resolver",
]

# A reactor providing IReactorThreads (callFromThread).
ReactorType = Any


@attrs.frozen
class Address:
    family: int
    host: str
    port: int

    def __str__(self) -> str:
        return (
            f"[{self.host}]:{self.port}"
            if self.family == socket.AF_INET6
            else (f"{self.host}:{self.port}")
        )


class ResolveError(Exception):
    """Name resolution failed; C{code} is getaddrinfo's EAI_* value."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


class ResolverUnavailable(Exception):
    """
    Name resolution could not be asked because the monitor's own resources
    failed: no thread for it, no descriptor or memory for getaddrinfo.  Not
    the name server's doing: message 42 with C{function number}
    (docs/failure-rules.md, "The monitor's own failures").
    """

    def __init__(self, function: str, number: int, text: str) -> None:
        super().__init__(text)
        self.function = function
        self.number = number


Resolver = Callable[[str, int], "Deferred[list[Address]]"]


def _getaddrinfo(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        if e.errno == socket.EAI_MEMORY:
            raise ResolverUnavailable("getaddrinfo", errno.ENOMEM, str(e)) from None
        raise ResolveError(e.errno if isinstance(e.errno, int) else 0, str(e)) from None
    except OSError as e:
        # EAI_SYSTEM: Python raises the errno itself (EMFILE opening
        # resolv.conf or the name server's socket).
        if e.errno in MONITOR_ERRNOS:
            raise ResolverUnavailable("getaddrinfo", e.errno, str(e)) from None
        raise ResolveError(0, str(e)) from None
    addresses: list[Address] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = Address(family, str(sockaddr[0]), port)
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise ResolveError(socket.EAI_NONAME, "no IPv4 or IPv6 address")
    return addresses


# Lookups still running in their threads; beyond this many, a new probe
# fails at once (81, EAI_AGAIN) instead of piling up threads behind a dead
# name server.
MAX_PENDING_LOOKUPS = 4


def _daemon_thread(work: Callable[[], None]) -> None:
    start_thread(work, "ismon-resolve")


def system_resolver(
    reactor: ReactorType, run_in_thread: Callable[[Callable[[], None]], None] = _daemon_thread
) -> Resolver:
    """
    getaddrinfo in a thread of its own.

    Twisted's own resolver (used by HostnameEndpoint) turns every failure
    into a bare DNSLookupError; message 81 needs getaddrinfo's error number,
    so we call it ourselves.  A daemon thread rather than the reactor's
    thread pool: getaddrinfo cannot be cancelled, and a pool thread stuck
    behind a dead name server would hold up the reactor's shutdown, so the
    watch's exit, for the resolver's own timeouts.  Literal addresses need
    no thread.
    """
    pending = [0]

    def resolve(host: str, port: int) -> Deferred[list[Address]]:
        literal = _literal(host, port)
        if literal is not None:
            return succeed([literal])
        if pending[0] >= MAX_PENDING_LOOKUPS:
            return fail(
                ResolveError(socket.EAI_AGAIN, f"{pending[0]} earlier lookups still pending")
            )
        result: Deferred[list[Address]] = Deferred()

        def deliver(addresses: list[Address] | None, error: Exception | None) -> None:
            pending[0] -= 1
            if result.called:
                return  # the deadline cancelled it meanwhile
            if error is not None:
                result.errback(error)
            else:
                assert addresses is not None
                result.callback(addresses)

        def work() -> None:
            try:
                addresses = _getaddrinfo(host, port)
            except (ResolveError, ResolverUnavailable) as e:
                reactor.callFromThread(deliver, None, e)
            except MemoryError:
                reactor.callFromThread(
                    deliver, None, ResolverUnavailable("getaddrinfo", errno.ENOMEM, "out of memory")
                )
            except Exception as e:
                reactor.callFromThread(deliver, None, ResolveError(0, repr(e)))
            else:
                reactor.callFromThread(deliver, addresses, None)

        try:
            run_in_thread(work)
        except ThreadUnavailable as e:
            # No thread, no lookup: the monitor's failure, not the name's.
            return fail(ResolverUnavailable(e.function, e.number, str(e)))
        pending[0] += 1
        return result

    return resolve


# A watch asks for the same host every probe: parse an address once.
@functools.lru_cache(maxsize=64)
def _literal(host: str, port: int) -> Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return Address(family, str(ip), port)
