"""The master keys that encrypt SecureString parameters, and where they come from.

Why a ring and not one key: rotating without downtime needs two keys at once. ``rotate``
adds a new *active* key (new writes use it) while older keys still decrypt; a background
pass re-encrypts under the active key (``crypto.needs_reencrypt`` / ``crypto.reencrypt``),
then ``retire`` drops the old key. ``Keyring`` is immutable: each step returns a new ring,
which the caller saves (``save_keyring``) before using it, so a crash never loses a key
that some ciphertext still needs.

Sources, first match wins: ``HATOBA_MASTER_KEY`` (base64 of 32 bytes; the only key),
``HATOBA_MASTER_KEY_FILE`` (a JSON key file or one base64 key), else the key file in the
data directory, created on first start. Keys from the environment are read-only: hatoba
never rewrites a file it does not own; rotate those by editing the JSON file.
Key material never appears in a repr or an error message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from hatoba.model.errors import HatobaError

ENV_KEY = "HATOBA_MASTER_KEY"
ENV_KEY_FILE = "HATOBA_MASTER_KEY_FILE"
KEY_FILE_NAME = "keyring.json"  # in the data directory
KEY_BYTES = 32  # AES-256


class KeyringError(HatobaError):
    """The keyring cannot be loaded, saved or changed. Never carries key material."""

    code = "KeyringError"
    http_status = 500


def key_id_of(key: bytes) -> str:
    """A short, stable name for a key: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def generate_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


class Keyring:
    """An ordered set of 32-byte keys (oldest first), exactly one of them active."""

    __slots__ = ("_active", "_keys", "read_only", "source")

    def __init__(
        self, keys: Mapping[str, bytes], active: str, *, source: str, read_only: bool = False
    ) -> None:
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise KeyringError(f"{source}: key {key_id} is {len(key)} bytes, not 32")
            if key_id_of(key) != key_id:
                raise KeyringError(f"{source}: key id {key_id} does not match its key")
        if active not in keys:
            raise KeyringError(f"{source}: the active key {active} is not in the keyring")
        self._keys = dict(keys)
        self._active = active
        self.source = source
        self.read_only = read_only

    @classmethod
    def generate(cls, source: str) -> Keyring:
        key = generate_key()
        return cls({key_id_of(key): key}, key_id_of(key), source=source)

    @property
    def active_id(self) -> str:
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def material(self, key_id: str) -> bytes:
        """The raw key, for ``crypto`` only. Raises ``KeyError`` for an unknown id."""
        return self._keys[key_id]

    def rotate(self) -> Keyring:
        """A ring with a fresh active key added; the old keys still decrypt."""
        self._check_writable("rotate")
        key = generate_key()
        while key_id_of(key) in self._keys:  # 32-bit ids: never overwrite a key still needed
            key = generate_key()
        keys = {**self._keys, key_id_of(key): key}
        return Keyring(keys, key_id_of(key), source=self.source)

    def retire(self, key_id: str) -> Keyring:
        """A ring without ``key_id``. Re-encrypt everything under the active key first."""
        self._check_writable("retire a key of")
        if key_id == self._active:
            raise KeyringError(f"key {key_id} is active; rotate before retiring it")
        if key_id not in self._keys:
            raise KeyringError(f"key {key_id} is not in the keyring")
        keys = {k: v for k, v in self._keys.items() if k != key_id}
        return Keyring(keys, self._active, source=self.source)

    def to_json(self) -> str:
        keys = {k: base64.b64encode(v).decode("ascii") for k, v in self._keys.items()}
        return json.dumps({"active": self._active, "keys": keys}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str, *, read_only: bool = False) -> Keyring:
        try:
            data = json.loads(text)
            keys = {str(k): _b64(v) for k, v in data["keys"].items()}
            active = str(data["active"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyringError(
                f'{source}: not a key file (expected {{"active": ID, "keys": {{ID: BASE64}}}})'
            ) from None
        return cls(keys, active, source=source, read_only=read_only)

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise KeyringError(
                f"cannot {what} the keyring from {self.source}: it is read-only; to rotate, "
                f"point {ENV_KEY_FILE} at a JSON key file and edit it, or unset the variable"
            )

    def __repr__(self) -> str:
        ro = ", read_only=True" if self.read_only else ""
        ids = self.key_ids
        return f"Keyring(active={self._active!r}, key_ids={ids!r}, source={self.source!r}{ro})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keyring):
            return NotImplemented
        return self._keys == other._keys and self._active == other._active

    __hash__ = None  # type: ignore[assignment]


def load_or_create_keyring(
    path: Path, environ: Mapping[str, str], *, create: bool = True
) -> Keyring:
    """The keyring in use: from the environment, else ``path``, created there (0600) if
    absent and ``create``. Pass ``create=False`` once SecureStrings exist, so a lost key
    file is an error rather than a fresh key that silently cannot read old secrets.
    """
    if environ.get(ENV_KEY) and environ.get(ENV_KEY_FILE):
        raise KeyringError(f"set only one of {ENV_KEY} and {ENV_KEY_FILE}")
    if environ.get(ENV_KEY):
        key = _raw_key(environ[ENV_KEY], ENV_KEY)
        return Keyring({key_id_of(key): key}, key_id_of(key), source=ENV_KEY, read_only=True)
    if environ.get(ENV_KEY_FILE):
        file = Path(environ[ENV_KEY_FILE])
        try:
            text = _read_private(file, f"{ENV_KEY_FILE}={file}")
        except FileNotFoundError:
            raise KeyringError(f"{ENV_KEY_FILE}={file}: no such file") from None
        if text.lstrip().startswith("{"):
            return Keyring.from_json(text, str(file), read_only=True)
        key = _raw_key(text, str(file))
        return Keyring({key_id_of(key): key}, key_id_of(key), source=str(file), read_only=True)
    try:
        return Keyring.from_json(_read_private(path, str(path)), str(path))
    except FileNotFoundError:
        if not create:
            raise KeyringError(
                f"key file {path} is missing and encrypted parameters exist; restore it "
                f"from backup or set {ENV_KEY} / {ENV_KEY_FILE}"
            ) from None
    ring = Keyring.generate(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_private(path, ring.to_json(), exclusive=True)
    except FileExistsError:  # another process created it first: use theirs
        return Keyring.from_json(_read_private(path, str(path)), str(path))
    return ring


def save_keyring(keyring: Keyring, path: Path) -> None:
    """Replace the key file atomically (temp file, fsync, rename), mode 0600."""
    keyring._check_writable("save")
    _write_private(path, keyring.to_json(), exclusive=False)


def _read_private(path: Path, label: str) -> str:
    """Read a key file, refusing one that group or others could read."""
    fd = os.open(path, os.O_RDONLY)  # FileNotFoundError passes through
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(
                f"{label}: key file is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
        with os.fdopen(fd, "r", encoding="utf-8", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def _write_private(path: Path, text: str, *, exclusive: bool) -> None:
    """Write ``text`` to a fresh 0600 temp file, then move it into place: a reader never
    sees a half-written key file. ``exclusive`` links instead of renaming, so an existing
    file is never replaced (``FileExistsError``).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _b64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("key must be a base64 string")
    return base64.b64decode(text.strip(), validate=True)


def _raw_key(text: str, source: str) -> bytes:
    """One base64 key (standard or URL-safe alphabet) of exactly 32 bytes."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{source}: not a base64 key") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(
            f"{source}: key is {len(key)} bytes; need 32 (e.g. `openssl rand -base64 32`)"
        )
    return key
