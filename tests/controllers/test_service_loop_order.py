"""The scheduler's work order: DAEMON services before any REPLICA service."""

from __future__ import annotations

from typing import Any, cast

from hatoba.controllers.service_loop import ServiceScheduler
from hatoba.model.clock import FakeClock


def scheduler() -> ServiceScheduler:
    return ServiceScheduler(cast(Any, None), FakeClock(), cast(Any, None), holder="t")


def test_daemons_first_and_replicas_wait_for_them() -> None:
    s = scheduler()
    s._daemons = {"logd"}
    s.mark(["web", "logd", "worker"])
    assert s._next() == "logd"
    s._busy.add("logd")
    assert s._next() is None  # a daemon is being worked on: replicas wait
    s._busy.discard("logd")
    rest = {s._next(), s._next()}
    assert rest == {"web", "worker"}
    assert s._next() is None


def test_a_busy_key_is_never_handed_out_twice() -> None:
    s = scheduler()
    s.mark(["web"])
    assert s._next() == "web"
    s._busy.add("web")
    s.mark(["web"])  # changed again while being worked on
    assert s._next() is None
    s._busy.discard("web")
    assert s._next() == "web"
