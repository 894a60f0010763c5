"""A loopback TCP load balancer in front of the dev cluster's Keycloak nodes.

Round-robin per connection; a backend that refuses the connection is skipped
for the next one, so stopping a node moves new connections to the others at
once. Bytes are relayed as they are (no HTTP parsing), so the Host header, and
with it Keycloak's issuer, is the balancer's address. Runs as its own process:

    python -m kcprov.dev.balancer --listen 8290 --backend 8280 --backend 8281 [--home DIR]

(``--home`` only names the dev home in the command line, so ``kcprov dev``
can tell this process from a reused pid.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 2.0


class RoundRobin:
    """Hands out backend ports in turn; ``connect`` skips those that refuse."""

    def __init__(self, ports: list[int]):
        self.ports = ports
        self._next = itertools.cycle(range(len(ports)))

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        start = next(self._next)
        for offset in range(len(self.ports)):
            port = self.ports[(start + offset) % len(self.ports)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(HOST, port), CONNECT_TIMEOUT)
            except (OSError, TimeoutError):
                continue
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def serve(listen_port: int, backends: RoundRobin) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        backend = await backends.connect()
        if backend is None:  # every node is down: the client sees a closed connection
            client_writer.close()
            return
        backend_reader, backend_writer = backend
        await asyncio.gather(_pipe(client_reader, backend_writer), _pipe(backend_reader, client_writer))

    server = await asyncio.start_server(handle, HOST, listen_port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback round-robin TCP balancer for kcprov's dev cluster.")
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--backend", type=int, action="append", required=True, help="a node's port on 127.0.0.1")
    parser.add_argument("--home", help="the dev home this balancer belongs to (for process checks)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen, RoundRobin(args.backend)))


if __name__ == "__main__":
    main()
