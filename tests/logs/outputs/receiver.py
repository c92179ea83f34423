"""A Fluentd forward-protocol (v1) receiver for tests, written from the specification
(Debian ships neither fluentd nor fluent-bit, so none can be installed here).

It accepts every carrier mode: Message ``[tag, time, record, option?]``, Forward
``[tag, [[time, record], ...], option?]``, PackedForward ``[tag, bin|str entries, option?]``
and CompressedPackedForward (PackedForward with ``option.compressed == "gzip"``; the
entries may be several gzip members), a ``nil`` heartbeat, EventTime (ext type 0) or integer
times, and answers ``{"ack": chunk}`` when the option has a ``chunk``. It keeps every event
it got (``events``) and, like a receiver that dedupes, the events of each chunk id once
(``unique``). Faults for tests: ``ack=False`` never acks; ``close_before_ack=n`` takes the
next n messages and hangs up without acking them; ``die_before_ack=True`` takes the next
message and dies (stops listening, drops every connection) without acking it: a node dying
mid-chunk; ``ack_delay`` seconds before each ack (a slow node); ``stop()`` kills it.
"""

from __future__ import annotations

import asyncio
import gzip
import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack


@dataclass(frozen=True)
class EventTime:
    seconds: int
    nanoseconds: int

    @property
    def ns(self) -> int:
        return self.seconds * 1_000_000_000 + self.nanoseconds


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 0 and len(data) == 8:
        return EventTime(*struct.unpack(">II", data))
    return msgpack.ExtType(code, data)


@dataclass
class Event:
    tag: str
    time: EventTime | int
    record: dict[str, Any]
    chunk: str | None
    mode: str


@dataclass
class ForwardReceiver:
    ack: bool = True
    close_before_ack: int = 0
    die_before_ack: bool = False
    ack_delay: float = 0.0
    port: int = 0
    events: list[Event] = field(default_factory=list)
    unique: list[Event] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)
    messages: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _die(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()

    async def stop(self) -> None:
        self._die()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def logs(self, *, unique: bool = True) -> list[str | bytes]:
        return [e.record["log"] for e in (self.unique if unique else self.events)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        unpacker = msgpack.Unpacker(
            raw=False, ext_hook=_ext_hook, unicode_errors="surrogateescape", max_buffer_size=0
        )
        try:
            while data := await reader.read(1 << 20):
                unpacker.feed(data)
                for msg in unpacker:
                    if msg is None:  # heartbeat
                        continue
                    chunk = self._take(msg)
                    if self.die_before_ack:
                        self.die_before_ack = False
                        self._die()
                        return
                    if self.close_before_ack > 0:
                        self.close_before_ack -= 1
                        writer.transport.abort()
                        return
                    if chunk is not None and self.ack:
                        if self.ack_delay:
                            await asyncio.sleep(self.ack_delay)
                        writer.write(msgpack.packb({"ack": chunk}))
                        await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _take(self, msg: Any) -> str | None:
        assert isinstance(msg, list) and len(msg) >= 2, msg
        tag, second = msg[0], msg[1]
        assert isinstance(tag, str)
        if isinstance(second, (int, float, EventTime)):
            mode = "Message"
            entries = [(second, msg[2])]
            option = msg[3] if len(msg) > 3 else None
        elif isinstance(second, list):
            mode = "Forward"
            entries = [(t, r) for t, r in second]
            option = msg[2] if len(msg) > 2 else None
        else:
            raw = second.encode("utf-8", "surrogateescape") if isinstance(second, str) else second
            option = msg[2] if len(msg) > 2 else None
            mode = "PackedForward"
            if option and option.get("compressed") == "gzip":
                raw = gzip.decompress(raw)  # concatenated members too
                mode = "CompressedPackedForward"
            stream = msgpack.Unpacker(
                raw=False, ext_hook=_ext_hook, unicode_errors="surrogateescape", max_buffer_size=0
            )
            stream.feed(raw)
            entries = [(t, r) for t, r in stream]
        option = option or {}
        if "size" in option:
            assert option["size"] == len(entries), (option, len(entries))
        chunk = option.get("chunk")
        self.messages += 1
        events = [Event(tag, t, r, chunk, mode) for t, r in entries]
        self.events.extend(events)
        if chunk is not None:
            self.chunks.append(chunk)
            if chunk in self._seen:
                return chunk
            self._seen.add(chunk)
        self.unique.extend(events)
        return chunk
