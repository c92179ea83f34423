"""Fixtures for driver tests: a ProcessDriver per test on a fresh data dir, sharing one
compiled shim, and cleanup of every container a test started."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hatoba.drivers.process import ProcessDriver, ensure_shim
from hatoba.drivers.protocol import ContainerSpec, Handle
from hatoba.logs.records import LogRecord, decode, join_partials
from hatoba.model.layout import DataLayout


@pytest.fixture(scope="session")
def shim_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_shim(tmp_path_factory.mktemp("shim-bin"))


@pytest.fixture
def layout(tmp_path: Path, shim_binary: Path) -> DataLayout:
    layout = DataLayout(tmp_path / "home")
    layout.bin_dir.mkdir(parents=True)
    shutil.copy2(shim_binary, layout.bin_dir / shim_binary.name)
    return layout


class Containers:
    """Makes specs with unique task ids and destroys what was started."""

    def __init__(self, driver: ProcessDriver, layout: DataLayout) -> None:
        self.driver = driver
        self.layout = layout
        self.handles: list[Handle] = []

    def spec(self, argv: list[str], **kw: Any) -> ContainerSpec:
        task_id = kw.pop("task_id", "t-" + uuid.uuid4().hex[:12])
        name = kw.pop("name", "app")
        return ContainerSpec(
            task_id=task_id,
            name=name,
            argv=argv,
            env=kw.pop("env", {"PATH": "/usr/local/bin:/usr/bin:/bin"}),
            state_dir=self.layout.container_dir(task_id, name) / "process",
            log_path=self.layout.container_log(task_id, name),
            **kw,
        )

    async def start(self, argv: list[str], **kw: Any) -> tuple[ContainerSpec, Handle]:
        spec = self.spec(argv, **kw)
        handle = await self.driver.start(spec)
        self.handles.append(handle)
        return spec, handle


@pytest.fixture
async def containers(layout: DataLayout) -> AsyncIterator[Containers]:
    c = Containers(ProcessDriver(layout), layout)
    yield c
    for handle in c.handles:
        await c.driver.stop(handle, "SIGKILL", 0)
        await c.driver.wait(handle)
        await c.driver.destroy(handle)


def read_log(path: Path | str, *, complete: bool = True) -> list[LogRecord]:
    """The log's records; with ``complete`` (a container that has exited) the file must end
    on a record boundary. While the shim is still writing, a torn tail is normal."""
    data = Path(path).read_bytes()
    records, end = decode(data)
    if complete:
        assert end == len(data), "the log ends with a torn record"
    return records


def lines(path: Path | str, stream: int | None = None, *, complete: bool = True) -> list[bytes]:
    records = read_log(path, complete=complete)
    return [r.data for r in join_partials(records) if stream is None or r.stream == stream]


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
