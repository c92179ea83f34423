"""The test receiver itself decodes every carrier mode of the forward protocol, so tests
that pass against it are not passing against a receiver that only knows our client."""

from __future__ import annotations

import asyncio
import gzip
import struct

import msgpack

from tests.logs.outputs.receiver import EventTime, ForwardReceiver


def et(seconds: int, nanos: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanos))


async def test_every_carrier_mode_and_acks():
    recv = ForwardReceiver()
    port = await recv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    pack = msgpack.Packer(use_bin_type=True).pack
    entries = pack([et(1, 2), {"log": "p1"}]) + pack([3, {"log": "p2"}])
    two_members = gzip.compress(pack([5, {"log": "c1"}])) + gzip.compress(pack([6, {"log": "c2"}]))
    for msg in (
        None,  # heartbeat
        ["m", 1700000000, {"log": "message"}],
        ["m", et(7, 8), {"log": "message-et"}, {"chunk": "c-msg"}],
        ["f", [[1, {"log": "f1"}], [et(2, 3), {"log": "f2"}]], {"size": 2, "chunk": "c-fwd"}],
        ["p", entries, {"size": 2}],
        ["c", two_members, {"compressed": "gzip", "size": 2, "chunk": "c-gz"}],
    ):
        writer.write(pack(msg))
    await writer.drain()
    unpacker = msgpack.Unpacker(raw=False)
    acks: list[str] = []
    while len(acks) < 3:
        unpacker.feed(await asyncio.wait_for(reader.read(4096), 5))
        acks += [a["ack"] for a in unpacker]
    writer.close()
    await recv.stop()
    assert acks == ["c-msg", "c-fwd", "c-gz"]
    assert [(e.mode, e.record["log"]) for e in recv.events] == [
        ("Message", "message"),
        ("Message", "message-et"),
        ("Forward", "f1"),
        ("Forward", "f2"),
        ("PackedForward", "p1"),
        ("PackedForward", "p2"),
        ("CompressedPackedForward", "c1"),
        ("CompressedPackedForward", "c2"),
    ]
    assert recv.events[1].time == EventTime(7, 8)
