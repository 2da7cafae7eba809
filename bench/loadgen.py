"""A small, bounded HTTP/1.1 load generator for loopback benchmarks.

Each of ``connections`` threads holds one keep-alive socket and sends one
request at a time (closed loop): send, read the whole response, record the
latency, repeat. The request bytes are built once and responses are parsed
only as far as status, Content-Length and Connection, so the client spends
far less CPU per request than the server does and is not what is measured.

Runs stop at a fixed wall-clock duration or after ``max_requests``,
whichever comes first. Only 127.0.0.1 / ::1 / localhost are accepted.
"""

from __future__ import annotations

import itertools
import math
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class ProtocolError(Exception):
    """The server sent something this client does not parse (e.g. chunked)."""


@dataclass
class LoadResult:
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    response_bytes: int = 0
    client_cpu_seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def merge(self, other: LoadResult) -> None:
        self.seconds += other.seconds
        self.requests += other.requests
        self.errors += other.errors
        self.response_bytes += other.response_bytes
        self.client_cpu_seconds += other.client_cpu_seconds
        self.latencies_ns.extend(other.latencies_ns)
        self.statuses.update(other.statuses)
        self.error_kinds.update(other.error_kinds)

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile of successful request latencies, in ms."""
        if not self.latencies_ns:
            return math.nan
        ordered = sorted(self.latencies_ns)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1] / 1e6


def build_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Connection: keep-alive", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, int, bool]:
    """Read one response; return (status, body length, server keeps the connection)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    head = bytes(buf[:end]).lower()
    if not head.startswith(b"http/1."):
        raise ProtocolError("not an HTTP/1.x response")
    status = int(head[9:12])
    i = head.find(b"\r\ncontent-length:")
    if i < 0:
        raise ProtocolError("response without Content-Length")
    j = head.find(b"\r\n", i + 2)
    length = int(head[i + 17 : j if j >= 0 else len(head)])
    need = end + 4 + length
    while len(buf) < need:
        chunk = sock.recv(max(65536, need - len(buf)))
        if not chunk:
            raise ConnectionError("server closed the connection mid-body")
        buf += chunk
    del buf[:need]
    return status, length, b"\r\nconnection: close" not in head


def run_load(
    host: str,
    port: int,
    path: str = "/",
    *,
    connections: int = 4,
    duration: float = 10.0,
    max_requests: int = 500_000,
    headers: dict[str, str] | None = None,
    expect_status: int = 200,
    record: bool = True,
) -> LoadResult:
    """Drive ``GET path`` for ``duration`` seconds; return what was measured."""
    if host not in LOOPBACK:
        raise ValueError("the load generator only talks to loopback")
    request = build_request(host, port, path, headers or {})
    ticket = itertools.count()  # next() is atomic under the GIL: bounds the total
    start_gate = threading.Barrier(connections + 1)
    per_thread = [LoadResult() for _ in range(connections)]
    deadline = 0.0

    def worker(result: LoadResult) -> None:
        sock: socket.socket | None = None
        buf = bytearray()
        latencies = result.latencies_ns
        clock = time.perf_counter_ns
        start_gate.wait()
        while time.perf_counter() < deadline and next(ticket) < max_requests:
            try:
                if sock is None:
                    sock = socket.create_connection((host, port), timeout=10)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buf.clear()
                t0 = clock()
                sock.sendall(request)
                status, length, keep = _read_response(sock, buf)
                elapsed = clock() - t0
            except (OSError, ProtocolError, ValueError) as exc:
                result.errors += 1
                result.error_kinds[type(exc).__name__] += 1
                if sock is not None:
                    sock.close()
                    sock = None
                continue
            result.statuses[status] += 1
            if status == expect_status:
                result.requests += 1
                result.response_bytes += length
                if record:
                    latencies.append(elapsed)
            else:
                result.errors += 1
                result.error_kinds[f"HTTP {status}"] += 1
            if not keep:
                sock.close()
                sock = None
        if sock is not None:
            sock.close()

    threads = [
        threading.Thread(target=worker, args=(r,), name=f"load-{i}", daemon=True)
        for i, r in enumerate(per_thread)
    ]
    for t in threads:
        t.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + duration
    start_gate.wait()
    for t in threads:
        t.join(duration + 30)
    wall = time.perf_counter() - t0
    total = LoadResult()
    for r in per_thread:
        total.merge(r)
    total.seconds = wall
    total.client_cpu_seconds = time.process_time() - cpu0
    return total


class KeepAliveGet:
    """A ``send`` for ``harness.paced``: ``GET path`` on one keep-alive connection
    (reopened when the server closes it); the status, or None when it failed."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str] | None = None):
        if host not in LOOPBACK:
            raise ValueError("the load generator only talks to loopback")
        self.address = (host, port)
        self.request = build_request(host, port, path, headers or {})
        self.buf = bytearray()
        self.sock: socket.socket | None = None

    def __call__(self) -> int | None:
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=30)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buf.clear()
            self.sock.sendall(self.request)
            status, _, keep = _read_response(self.sock, self.buf)
        except (OSError, ProtocolError, ValueError):
            self.close()
            return None
        if not keep:
            self.close()
        return status

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
