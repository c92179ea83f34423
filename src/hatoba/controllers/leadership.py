"""What the reconcile loops share: leading through a store lease, and following the feed.

``LeaderLease`` campaigns for a named lease every ttl/3; while it is held, the loop's body
runs under a fresh ``Supervisor`` beside a renewal task. When renewals fail for most of the
ttl (another control plane may take over any moment) the body is cancelled and the
campaign starts again; the lease is released when ``run`` ends. Renewals are timed by the
event loop, or by the injected clock (``on_clock``) where fake time in tests must move the
renewals and the lease's expiry (which the store compares with the clock's time) together.

``follow_changes`` reads the change feed from the moment it starts and hands each batch
on, with a full resync at the start and every ``resync_seconds`` to cover anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hatoba.model.clock import Clock
from hatoba.store.protocol import Change, Store
from hatoba.supervise import Supervisor


@dataclass(frozen=True)
class Role:
    """Which lease a loop campaigns for, and how it speaks of it."""

    lease: str  # the lease's name in the store
    title: str  # what leading means, for the log: "the job scheduler"
    tasks: str  # the supervisor's name: the body's tasks are "<tasks>/<name>"
    log: logging.Logger
    on_clock: bool = False  # campaign and renew on the injected clock


class LeaderLease:
    def __init__(self, store: Store, clock: Clock, role: Role, holder: str, ttl: float) -> None:
        self._store = store
        self._clock = clock
        self.role = role
        self.name = role.lease
        self.holder = holder
        self.ttl = ttl  # seconds the lease lasts without renewal
        self._log = role.log
        self.on_clock = role.on_clock
        self.is_leader = asyncio.Event()
        self.supervisor: Supervisor | None = None  # the body's, while leading

    async def run(
        self,
        start: Callable[[Supervisor], None],
        stopped: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run until cancelled: campaign for the lease; while holding it, ``start`` the
        body's tasks on a supervisor, closed when the lease is lost; ``stopped`` runs after
        each term."""
        try:
            while True:
                if await self._acquire():
                    await self._lead(start, stopped)
                await self._sleep(self.ttl / 3)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.release_lease(self.name, self.holder))

    async def _sleep(self, seconds: float) -> None:
        if self.on_clock:
            await self._clock.sleep(seconds)
        else:
            await asyncio.sleep(seconds)

    def _now(self) -> float:
        if self.on_clock:
            return self._clock.now().timestamp()
        return asyncio.get_running_loop().time()

    async def _acquire(self) -> bool:
        try:
            return await self._store.acquire_lease(
                self.name, self.holder, self.ttl, self._clock.now()
            )
        except Exception:
            self._log.exception("could not reach the store to take the %s lease", self.name)
            return False

    async def _lead(
        self,
        start: Callable[[Supervisor], None],
        stopped: Callable[[], Awaitable[None]] | None,
    ) -> None:
        """Run the body until the lease is lost (not renewed within its ttl)."""
        self._log.info("%s leads %s", self.holder, self.role.title)
        supervisor = Supervisor(self.role.tasks)
        self.supervisor = supervisor
        self.is_leader.set()
        try:
            lost = asyncio.Event()
            supervisor.start(self._keep(lost), "lease")
            start(supervisor)
            await lost.wait()
            self._log.warning("%s lost the %s lease", self.holder, self.name)
        finally:
            self.is_leader.clear()
            self.supervisor = None
            await supervisor.close()
            if stopped is not None:
                await stopped()

    async def _keep(self, lost: asyncio.Event) -> None:
        """Renew every ttl/3; give up once renewals failed for most of the ttl."""
        held_until = self._now() + self.ttl
        while True:
            await self._sleep(self.ttl / 3)
            if await self._acquire():
                held_until = self._now() + self.ttl
            elif self._now() >= held_until - self.ttl / 3:
                lost.set()  # another may take over any moment
                return


async def follow_changes(
    store: Store,
    resync_seconds: float,
    on_changes: Callable[[list[Change]], Awaitable[None]],
    on_resync: Callable[[], Awaitable[None]],
) -> None:
    """Run until cancelled: ``on_resync`` now and every ``resync_seconds`` (event loop
    time), ``on_changes`` with every batch of the feed since this call began."""
    seq = store.known_change_seq()
    await on_resync()
    loop = asyncio.get_running_loop()
    next_resync = loop.time() + resync_seconds
    while True:
        newest = await store.wait_for_change(seq, max(0.0, next_resync - loop.time()))
        if newest > seq:
            changes = await store.changes_since(seq)
            seq = changes[-1].seq if changes else newest
            await on_changes(changes)
        if loop.time() >= next_resync:
            next_resync = loop.time() + resync_seconds
            await on_resync()
