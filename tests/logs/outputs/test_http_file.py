"""The HTTP JSON-lines output against a real local HTTP server, and the file output."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.logs.outputs.support import Harness, meta, numbered, spec, wait_until, write_lines


@dataclass
class HttpSink:
    """An HTTP/1.1 server answering each POST with the next status of ``statuses`` (then
    200), keeping the bodies it answered 2xx to."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    requests: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/ingest"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.statuses.pop(0) if self.statuses else 200
                self.requests.append((status, headers))
                if 200 <= status < 300:
                    self.bodies.append(body)
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok".encode("latin-1")
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def records(self) -> list[dict]:
        return [json.loads(line) for b in self.bodies for line in b.splitlines()]


@pytest.fixture
async def sink():
    s = HttpSink()
    yield s
    await s.stop()


async def test_http_retries_5xx_then_delivers_json_lines(tmp_path: Path, sink: HttpSink):
    url = await sink.start()
    sink.statuses = [500, 503]
    log = tmp_path / "t1" / "app" / "stdio.log"
    write_lines(log, [*numbered(5), b"bin \xff"])
    out = spec(type="http", url=url, headers={"X-Key": "k"}, retryMin=0.05, retryMax=0.1)
    h = Harness(out, tmp_path / "state")
    h.add(meta(service="api"), log)
    async with h.running():
        await wait_until(lambda: len(sink.bodies) == 1, what="a delivered POST")
    assert [s for s, _ in sink.requests] == [500, 503, 200]
    _, headers = sink.requests[-1]
    assert headers["content-type"] == "application/x-ndjson" and headers["x-key"] == "k"
    # the same batch each time: same chunk id
    assert len({hd["x-hatoba-chunk"] for _, hd in sink.requests}) == 1
    recs = sink.records()
    assert [r["log"] for r in recs] == [*(x.decode() for x in numbered(5)), "bin \\xff"]
    assert base64.b64decode(recs[-1]["log_base64"]) == b"bin \xff"
    assert recs[0]["service"] == "api" and recs[0]["stream"] == "stdout"
    assert recs[0]["time"].endswith("Z") and isinstance(recs[0]["timestamp_ns"], int)
    assert h.metric("hatoba_log_output_failures_total") == 2


async def test_http_4xx_drops_the_batch_with_a_metric(tmp_path: Path, sink: HttpSink):
    url = await sink.start()
    sink.statuses = [400]
    log = tmp_path / "t1" / "app" / "stdio.log"
    write_lines(log, numbered(3))
    h = Harness(spec(type="http", url=url, chunkRecords=3), tmp_path / "state")
    h.add(meta(), log)
    async with h.running() as worker:
        await wait_until(lambda: h.notices, what="the rejection")
        write_lines(log, numbered(2, start=3))
        worker.wake()
        await wait_until(lambda: len(sink.bodies) == 1)
    assert h.metric("hatoba_log_records_dropped_total", reason="rejected") == 3
    assert h.notices[0].reason == "rejected" and "HTTP 400" in h.notices[0].detail
    assert [r["log"] for r in sink.records()] == ["line 000003", "line 000004"]


async def test_file_output_appends_fsyncs_and_rotates(tmp_path: Path):
    log = tmp_path / "t1" / "app" / "stdio.log"
    write_lines(log, numbered(100))
    target = tmp_path / "out" / "{family}-{container}.jsonl"
    out = spec(type="file", path=str(target), rotateBytes=4096, rotateKeep=2, chunkRecords=10)
    h = Harness(out, tmp_path / "state")
    h.add(meta(), log)
    async with h.running():
        await wait_until(lambda: not h.buffer.backlog(), what="all written")
    base = tmp_path / "out" / "web-app.jsonl"
    files = sorted(p.name for p in base.parent.iterdir())
    assert files == ["web-app.jsonl", "web-app.jsonl.1", "web-app.jsonl.2"]
    kept = []
    for p in (base.with_name("web-app.jsonl.2"), base.with_name("web-app.jsonl.1"), base):
        assert p.stat().st_size <= 4096
        kept += [json.loads(line)["log"] for line in p.read_text().splitlines()]
    # the oldest rotated file was deleted (keep 2): what is kept is the newest, in order
    assert kept == [x.decode() for x in numbered(100)][-len(kept) :]
    assert len(kept) >= 20
