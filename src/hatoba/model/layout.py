"""Where hatoba keeps things in its data directory (pure path arithmetic, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    home: Path

    @property
    def database(self) -> Path:
        return self.home / "hatoba.db"

    @property
    def token_file(self) -> Path:
        return self.home / "token"

    @property
    def keyring_file(self) -> Path:
        """The master keys of SecureString parameters (see hatoba.secrets.keyring)."""
        return self.home / "keyring.json"

    @property
    def server_file(self) -> Path:
        """Written by a running server: its URL and pid."""
        return self.home / "server.json"

    @property
    def lock_file(self) -> Path:
        return self.home / "server.lock"

    @property
    def bin_dir(self) -> Path:
        return self.home / "bin"

    @property
    def tasks_dir(self) -> Path:
        return self.home / "tasks"

    def task_dir(self, task_id: str) -> Path:
        return self.tasks_dir / task_id

    def container_dir(self, task_id: str, container: str) -> Path:
        return self.task_dir(task_id) / container

    def container_log(self, task_id: str, container: str) -> Path:
        """The container's stdout/stderr as framed log records (see hatoba.logs.records)."""
        return self.container_dir(task_id, container) / "stdio.log"
