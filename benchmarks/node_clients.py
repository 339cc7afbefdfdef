"""The Node load clients (``benchmarks/js/clients.mjs``) as seen from Python: processes
that each hold a share of the Socket.IO clients and obey JSON-line commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().with_name("js")
CLIENTS_SCRIPT = JS_DIR / "clients.mjs"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard one (each client holds a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def node_binary() -> str:
    """``node`` from PATH, once the clients' npm packages are installed."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is missing: the load clients need Node.js 20")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        raise SystemExit(f"run `make bench-e2e` or `npm ci --prefix {JS_DIR}` first")
    return node


class ClientProcs:
    """Several ``clients.mjs`` Node processes, driven over their stdin/stdout.

    Given several gateway URLs, process ``i`` connects to ``urls[i % len(urls)]``, and the
    process count is rounded up to a multiple of them so that each gateway gets as many
    clients as the others (within one).
    """

    def __init__(self, url: str | Sequence[str], total: int, procs: int, tag: str) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("no gateway URL")
        per_url = -(-max(procs, 1) // len(self.urls))
        self.total, self.procs, self.tag = total, per_url * len(self.urls), tag
        self.node = node_binary()
        self._children: list[asyncio.subprocess.Process] = []

    async def start(self, within: float = 300.0) -> float:
        """Connect all clients; returns the seconds it took."""
        started = time.perf_counter()
        shares = [
            self.total // self.procs + (i < self.total % self.procs) for i in range(self.procs)
        ]
        for i, share in enumerate(shares):
            child = await asyncio.create_subprocess_exec(
                self.node,
                str(CLIENTS_SCRIPT),
                self.urls[i % len(self.urls)],
                "/sockethub",
                str(share),
                f"{self.tag}{i}",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=64 * 1024 * 1024,
            )
            self._children.append(child)
        await asyncio.wait_for(asyncio.gather(*(self._read(c) for c in self._children)), within)
        return time.perf_counter() - started

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self._children]

    async def _read(self, child: asyncio.subprocess.Process) -> dict[str, Any]:
        assert child.stdout is not None
        line = await child.stdout.readline()
        if not line:
            raise RuntimeError(f"client process {child.pid} ended early (exit {child.returncode})")
        message: dict[str, Any] = json.loads(line)
        return message

    async def command(self, command: dict[str, Any], within: float) -> list[dict[str, Any]]:
        for child in self._children:
            assert child.stdin is not None
            child.stdin.write((json.dumps(command) + "\n").encode())
            await child.stdin.drain()
        return list(
            await asyncio.wait_for(asyncio.gather(*(self._read(c) for c in self._children)), within)
        )

    async def close(self) -> None:
        for child in self._children:
            if child.returncode is None and child.stdin is not None:
                child.stdin.write(b'{"cmd": "quit"}\n')
                with contextlib.suppress(ConnectionError):
                    await child.stdin.drain()
        for child in self._children:
            try:
                await asyncio.wait_for(child.wait(), 60)
            except TimeoutError:
                child.kill()
                await child.wait()
