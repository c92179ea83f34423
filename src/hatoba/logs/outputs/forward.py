"""Fluentd's forward protocol (v1), client side.

Each batch goes out as one PackedForward message per tag — ``[tag, bin(entries), option]``,
entries being concatenated msgpack ``[time, record]`` pairs — or CompressedPackedForward
(``compress: gzip``: the entries gzipped, option ``compressed: "gzip"``). ``time`` is an
EventTime (msgpack ext type 0: big-endian uint32 seconds, uint32 nanoseconds), or integer
seconds with ``timeAsInteger``. The option carries ``size`` (entries) and, with
``requireAck``, ``chunk``: a message counts as delivered only when the node answers
``{"ack": chunk}``.

At least once: a node that fails or does not ack in ``ackTimeout`` is marked down and the
same messages, same chunk ids, go to the next healthy node, so a receiver that did get them
can drop the copy. Without acks a message counts as delivered once written to the socket,
which a node dying at that moment can lose. The shared-key handshake is not implemented.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from hatoba.logs.outputs.base import Batch, OutputUnavailable
from hatoba.logs.outputs.events import LogEvent, forward_record
from hatoba.logs.outputs.upstream import NodeState, Upstream
from hatoba.model.log_outputs import ForwardOutput, render

log = logging.getLogger("hatoba.logs.forward")
_NET_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError)


def event_time(timestamp_ns: int) -> msgpack.ExtType:
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    return msgpack.ExtType(0, struct.pack(">II", seconds & 0xFFFFFFFF, nanos))


def sub_chunk_id(chunk_id: str, index: int) -> str:
    if index == 0:
        return chunk_id
    digest = hashlib.blake2b(f"{chunk_id}/{index}".encode(), digest_size=16).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Message:
    chunk: str
    payload: bytes
    size: int


def encode_batch(spec: ForwardOutput, batch: Batch) -> list[Message]:
    """One PackedForward (or CompressedPackedForward) message per tag, tags in order of
    first appearance, each tag's events in batch order."""
    groups: dict[str, list[LogEvent]] = {}
    for event in batch.events:
        tag = render(spec.tag, event.source.template_values())
        groups.setdefault(tag, []).append(event)
    messages = []
    packer = msgpack.Packer(use_bin_type=True)
    for i, (tag, events) in enumerate(groups.items()):
        parts = []
        for ev in events:
            ts = ev.record.timestamp_ns
            when: Any = ts // 1_000_000_000 if spec.time_as_integer else event_time(ts)
            parts.append(packer.pack([when, forward_record(ev)]))
        entries = b"".join(parts)
        option: dict[str, Any] = {"size": len(events)}
        if spec.compress == "gzip":
            entries = gzip.compress(entries, compresslevel=3)
            option["compressed"] = "gzip"
        chunk = sub_chunk_id(batch.chunk_id, i)
        if spec.require_ack:
            option["chunk"] = chunk
        messages.append(Message(chunk, packer.pack([tag, entries, option]), len(events)))
    return messages


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.unpacker = msgpack.Unpacker(raw=False)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


class ForwardClient:
    """An ``Output`` that speaks forward to an upstream of one or more nodes."""

    def __init__(self, spec: ForwardOutput, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.name = spec.name
        self.upstream = Upstream(
            list(spec.nodes), spec.balance, retry_min=spec.retry_min, retry_max=spec.retry_max
        )
        self._clock = clock
        self._conns: dict[int, _Conn] = {}

    async def send(self, batch: Batch) -> None:
        messages = encode_batch(self.spec, batch)
        candidates = self.upstream.candidates(self._clock())
        if not candidates:
            wait = self.upstream.next_up_in(self._clock())
            raise OutputUnavailable(f"every node of {self.name} is down", retry_after=wait)
        problems = []
        for state in candidates:
            try:
                await self._send_to(state, messages)
            except _NET_ERRORS as exc:
                await self._forget(state)
                backoff = self.upstream.mark_down(state, self._clock())
                problems.append(f"{state.label}: {exc!r}")
                level = logging.WARNING if state.failures == 1 else logging.DEBUG
                log.log(
                    level,
                    "log output %s: node %s failed (%r); down for %.1fs",
                    self.name,
                    state.label,
                    exc,
                    backoff,
                )
                continue
            if state.failures:
                log.warning("log output %s: node %s is back", self.name, state.label)
            self.upstream.mark_up(state)
            return
        raise OutputUnavailable(
            "; ".join(problems), retry_after=self.upstream.next_up_in(self._clock())
        )

    async def _send_to(self, state: NodeState, messages: list[Message]) -> None:
        index = self.upstream.nodes.index(state)
        conn = self._conns.get(index)
        if conn is not None:
            try:
                await self._exchange(conn, messages)
                return
            except _NET_ERRORS:
                # a kept connection the node closed while idle: one more try on a new one
                await self._forget(state)
        conn = await self._connect(state)
        self._conns[index] = conn
        await self._exchange(conn, messages)

    async def _connect(self, state: NodeState) -> _Conn:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(state.node.host, state.node.port, limit=1 << 20),
            self.spec.connect_timeout,
        )
        return _Conn(reader, writer)

    async def _exchange(self, conn: _Conn, messages: list[Message]) -> None:
        async with asyncio.timeout(self.spec.ack_timeout):
            for m in messages:
                conn.writer.write(m.payload)
            await conn.writer.drain()
            if not self.spec.require_ack:
                return
            wanted = {m.chunk for m in messages}
            while wanted:
                data = await conn.reader.read(65536)
                if not data:
                    raise ConnectionResetError("connection closed before the ack")
                conn.unpacker.feed(data)
                for obj in conn.unpacker:
                    if isinstance(obj, dict) and isinstance(obj.get("ack"), str):
                        wanted.discard(obj["ack"])

    async def _forget(self, state: NodeState) -> None:
        conn = self._conns.pop(self.upstream.nodes.index(state), None)
        if conn is not None:
            await conn.close()

    async def close(self) -> None:
        for conn in list(self._conns.values()):
            await conn.close()
        self._conns.clear()
