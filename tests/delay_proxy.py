"""
A small delaying TCP proxy, our stand-in for C{tc netem delay} (the kernel
of the test machines has no netem).

Every chunk of data is passed on C{delay} seconds after it arrived, in each
direction, order kept -- a one-way latency on both paths, so a request and
its answer take C{2 * delay} more than without the proxy.  The end of a
stream (FIN) is delayed like data.  The connection to the target is made
when a client connects; if that fails, the client is disconnected.

In a test (the proxy runs in a thread of the test process)::

    with DelayProxy("127.0.0.1", nginx.port, delay=0.2) as proxy:
        ...  # point the watch at 127.0.0.1:proxy.port
        proxy.delay = 1.5  # from now on; data already queued keeps its time

As a process (for instance inside a network namespace)::

    python tests/delay_proxy.py --listen 10.0.0.1:8080 --target 10.0.0.2:80 --delay 0.3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["DelayProxy"]

_CHUNK = 65536


class DelayProxy:
    """
    Listens on C{listen_host}:C{listen_port} (0: a free port, see L{port})
    and relays every connection to C{target_host}:C{target_port}.

    @ivar delay: seconds added to each direction; may be changed at any
        time (new data uses the new value; never reordered).
    @ivar connections: connections accepted so far.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        delay: float = 0.0,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.delay = delay
        self.listen_host = listen_host
        self.connections = 0
        self.port = listen_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- running in a thread ------------------------------------------------

    def start(self) -> DelayProxy:
        """Start serving in a background thread; returns once listening."""
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"the delay proxy could not start: {self._error}")
        if not self._ready.is_set():
            raise RuntimeError("the delay proxy did not start within 10 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as e:
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for task in list(self._tasks):
                task.cancel()
            waiting = [*self._tasks, *self._handlers]
            if waiting:
                loop.run_until_complete(asyncio.gather(*waiting, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Close the listener and every relayed connection; wait for the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        def shut() -> None:
            if self._server is not None:
                self._server.close()
            loop.stop()

        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(shut)
        thread.join(10)

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- relaying -----------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accepted, self.listen_host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _track(self, coroutine: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        # asyncio owns this task (it asks it for its exception): it is not
        # cancelled at shutdown, it ends once its pipes are cancelled.
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pipes = [
            self._track(self._pipe(reader, up_writer)),
            self._track(self._pipe(up_reader, writer)),
        ]
        try:
            # Both directions end normally (FIN each way); an error on
            # either side ends the whole relay.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy C{reader} to C{writer}, each chunk C{delay} seconds late."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def feed() -> None:
            last = 0.0
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except OSError:
                    data = b""
                # Never overtake earlier data when the delay shrinks.
                last = max(loop.time() + self.delay, last)
                queue.put_nowait((last, data))
                if not data:
                    return

        feeding = asyncio.ensure_future(feed())
        try:
            while True:
                release, data = await queue.get()
                wait = release - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        with contextlib.suppress(OSError):
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await feeding


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="delay_proxy.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--target", required=True, help="HOST:PORT to relay to")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per direction")
    options = parser.parse_args(argv)
    listen_host, listen_port = _address(options.listen)
    target_host, target_port = _address(options.target)
    proxy = DelayProxy(
        target_host,
        target_port,
        options.delay,
        listen_host=listen_host,
        listen_port=listen_port,
    ).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"delaying {options.delay}s: {listen_host}:{proxy.port} -> {options.target}", flush=True)
    while not done.wait(1.0):
        pass
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
