"""What every metric source shares: the reading, the error, the Protocol, and the
one-client-per-source life cycle (connect on first use, drop the client after a failure,
connect again on the next read)."""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

Now = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MetricReading:
    """One good read. ``value`` is what a policy uses (backlog length, seconds, percent)."""

    value: float
    at: datetime
    detail: dict[str, float] = field(default_factory=dict)


class MetricError(Exception):
    """A read failed. The message says why (and never contains a password)."""


class ResultError(MetricError):
    """The server answered, but not with one usable number (the client is kept)."""


class MetricSource(Protocol):
    kind: str

    async def read(self) -> MetricReading:
        """One reading, or ``MetricError``: never a made-up 0."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class TaskUsage:
    """One task's use of what it reserved, in percent (may exceed 100 without hard limits)."""

    cpu_percent_of_reservation: float
    memory_percent_of_reservation: float


class TaskStatsProvider(Protocol):
    """The running tasks of one service (whoever knows them: the agent, a test)."""

    async def usage(self) -> list[TaskUsage]: ...


_CLOSE_TIMEOUT = 2.0
_REFUSED = ("Connection refused", "Connect call failed", "Errno 111")


def describe(exc: BaseException) -> str:
    """A short human reason for an exception from a client library."""
    text = str(exc).strip()
    if isinstance(exc, ConnectionRefusedError) or any(s in text for s in _REFUSED):
        return "connection refused"
    name = type(exc).__name__
    if not text:
        return name
    return text if name in text else f"{name}: {text}"


def with_password(url: str, password: str) -> str:
    """``url`` with its password set (the user part kept; percent-encoded)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def redact(url: str) -> str:
    """``url`` fit for messages and logs: any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:***@{host}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable url>"


def as_number(value: object, what: str) -> float:
    """A finite float from an int/float/Decimal (or a numeric string when allowed by caller)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        kind = "NULL" if value is None else type(value).__name__
        raise ResultError(f"{what} is {kind} {shown}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ResultError(f"{what} is {number}, not a finite number")
    return number


C = TypeVar("C")


class Connected(ABC, Generic[C]):
    """A source with one long-lived client.

    ``read`` connects on first use and reuses the client. After any failure other than a
    ``ResultError`` (the server answered sensibly, the answer was just not one number), and
    after a read cancelled half-way (a timeout), the client is dropped and the next read
    connects again: a half-read socket is never reused.
    """

    kind: str = "?"

    def __init__(self, target: str, *, secret: str | None = None, now: Now = utcnow) -> None:
        self.target = target  # redacted: "redis 127.0.0.1:6379", used in messages
        self._secret = secret
        self._now = now
        self._client: C | None = None
        self._stale: list[C] = []
        self._closed = False

    @abstractmethod
    async def _connect(self) -> C: ...

    @abstractmethod
    async def _disconnect(self, client: C) -> None: ...

    @abstractmethod
    async def _measure(self, client: C) -> MetricReading:
        """One reading. Raise ``ResultError`` for bad answers, ``MetricError`` for the rest."""

    async def read(self) -> MetricReading:
        if self._closed:
            raise MetricError(f"{self.kind} source is closed")
        await self._drop_stale()
        client = self._client
        if client is None:
            try:
                client = await self._connect()
            except MetricError as exc:
                raise MetricError(self._scrub(str(exc))) from exc
            except Exception as exc:
                message = f"cannot connect to {self.target}: {describe(exc)}"
                raise MetricError(self._scrub(message)) from exc
            self._client = client
        keep = False
        try:
            reading = await self._measure(client)
            keep = True
            return reading
        except ResultError as exc:
            keep = True
            raise ResultError(self._scrub(str(exc))) from exc
        except MetricError as exc:
            raise MetricError(self._scrub(str(exc))) from exc
        except Exception as exc:
            raise MetricError(
                self._scrub(f"{self.kind} read from {self.target} failed: {describe(exc)}")
            ) from exc
        finally:
            if not keep and self._client is client:
                # no await here: this also runs when the read is cancelled by a timeout
                self._client = None
                self._stale.append(client)

    async def close(self) -> None:
        self._closed = True
        await self._drop_stale()
        client, self._client = self._client, None
        if client is not None:
            await self._quietly_disconnect(client)

    async def _drop_stale(self) -> None:
        stale, self._stale = self._stale, []
        for client in stale:
            await self._quietly_disconnect(client)

    async def _quietly_disconnect(self, client: C) -> None:
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self._disconnect(client)
        except Exception:  # a broken client may fail (or hang) to close: dropped anyway
            return

    def _scrub(self, message: str) -> str:
        if self._secret:
            for form in {self._secret, quote(self._secret, safe=""), unquote(self._secret)}:
                message = message.replace(form, "***")
        return message

    def reading(self, value: float, **detail: float) -> MetricReading:
        return MetricReading(float(value), self._now(), {k: float(v) for k, v in detail.items()})


class FailingSource:
    """A source that could not be set up (e.g. a missing ``passwordFromEnv`` variable):
    every read raises the same ``MetricError``, so the poller reports it like any failure."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message

    async def read(self) -> MetricReading:
        raise MetricError(self.message)

    async def close(self) -> None:
        return None
