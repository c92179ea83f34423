"""Per-task secrets: each task gets ``HATOBA_TASK_TOKEN``, an HMAC-SHA256 of its task id under
a key kept in the data directory, so a task can prove who it is to the agent endpoint (task
scale-in protection) and nothing per task is stored. A task can only speak for itself: its
token says nothing about any other task id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_FILE = "task-token.key"
PREFIX = "htt_"


class TaskTokens:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the task token key is too short")
        self._key = key

    @classmethod
    def load(cls, home: Path) -> TaskTokens:
        """The key in ``home`` (the data directory), created 0600 on first use."""
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = home / KEY_FILE
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except FileNotFoundError:
            pass
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return cls(bytes.fromhex(path.read_text().strip()))
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
        return cls(key)

    def token(self, task_id: str) -> str:
        return PREFIX + hmac.new(self._key, task_id.encode(), hashlib.sha256).hexdigest()

    def verify(self, task_id: str, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(self.token(task_id), presented)
