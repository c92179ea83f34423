"""Where keys come from: the 0600 key file, HATOBA_MASTER_KEY, HATOBA_MASTER_KEY_FILE."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from hatoba.secrets.crypto import decrypt, encrypt
from hatoba.secrets.keyring import (
    ENV_KEY,
    ENV_KEY_FILE,
    KeyringError,
    key_id_of,
    load_or_create_keyring,
    save_keyring,
)

KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_created_0600_on_first_start_then_reloaded(tmp_path):
    path = tmp_path / "data" / "keyring.json"
    ring = load_or_create_keyring(path, {})
    assert _mode(path) == 0o600
    data = json.loads(path.read_text())
    assert data["active"] == ring.active_id and list(data["keys"]) == [ring.active_id]
    assert load_or_create_keyring(path, {}) == ring
    assert not ring.read_only
    assert [p.name for p in path.parent.iterdir()] == ["keyring.json"]  # no temp files left


def test_refused_when_readable_by_others(tmp_path):
    path = tmp_path / "keyring.json"
    ring = load_or_create_keyring(path, {})
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="chmod 600") as info:
        load_or_create_keyring(path, {})
    assert base64.b64encode(ring.material(ring.active_id)).decode() not in str(info.value)


def test_missing_file_with_create_false_is_an_error(tmp_path):
    with pytest.raises(KeyringError, match="missing"):
        load_or_create_keyring(tmp_path / "keyring.json", {}, create=False)
    assert not (tmp_path / "keyring.json").exists()


def test_corrupt_file_names_the_format(tmp_path):
    path = tmp_path / "keyring.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'{"active": "x", "keys": {"x": "not base64!"}}')
    os.close(fd)
    with pytest.raises(KeyringError, match="not a key file"):
        load_or_create_keyring(path, {})


def test_rotate_save_reload_keeps_both_keys(tmp_path):
    path = tmp_path / "keyring.json"
    ring = load_or_create_keyring(path, {})
    env = encrypt(ring, "s3cret", "/a")
    rotated = ring.rotate()
    save_keyring(rotated, path)
    assert _mode(path) == 0o600
    reloaded = load_or_create_keyring(path, {})
    assert reloaded == rotated and reloaded.key_ids == rotated.key_ids
    assert decrypt(reloaded, env, "/a") == "s3cret"
    save_keyring(reloaded.retire(ring.active_id), path)
    assert load_or_create_keyring(path, {}).key_ids == (rotated.active_id,)


def test_env_master_key_is_the_only_key_and_read_only(tmp_path):
    path = tmp_path / "keyring.json"
    ring = load_or_create_keyring(path, {ENV_KEY: KEY_B64 + "\n"})
    assert ring.key_ids == (key_id_of(KEY),) and ring.read_only
    assert not path.exists()  # nothing written when the key comes from the environment
    for action in (ring.rotate, lambda: save_keyring(ring, path)):
        with pytest.raises(KeyringError, match="read-only"):
            action()
    urlsafe = base64.urlsafe_b64encode(KEY).decode().rstrip("=")
    assert load_or_create_keyring(path, {ENV_KEY: urlsafe}) == ring
    assert KEY_B64 not in repr(ring)


@pytest.mark.parametrize("bad", ["!!!", base64.b64encode(b"short").decode()])
def test_env_master_key_rejects_bad_keys(tmp_path, bad):
    with pytest.raises(KeyringError, match=ENV_KEY):
        load_or_create_keyring(tmp_path / "k", {ENV_KEY: bad})


def test_both_env_vars_is_ambiguous(tmp_path):
    with pytest.raises(KeyringError, match="only one"):
        load_or_create_keyring(tmp_path / "k", {ENV_KEY: KEY_B64, ENV_KEY_FILE: "/x"})


def _private(path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, text.encode())
    os.close(fd)


def test_env_key_file_raw_and_json(tmp_path):
    raw = tmp_path / "raw.key"
    _private(raw, KEY_B64 + "\n")
    ring = load_or_create_keyring(tmp_path / "k", {ENV_KEY_FILE: str(raw)})
    assert ring.key_ids == (key_id_of(KEY),) and ring.read_only

    other = bytes(range(32, 64))
    js = tmp_path / "ring.json"
    keys = {key_id_of(KEY): KEY_B64, key_id_of(other): base64.b64encode(other).decode()}
    _private(js, json.dumps({"active": key_id_of(other), "keys": keys}))
    ring2 = load_or_create_keyring(tmp_path / "k", {ENV_KEY_FILE: str(js)})
    assert ring2.key_ids == (key_id_of(KEY), key_id_of(other))
    assert ring2.active_id == key_id_of(other) and ring2.read_only
    assert decrypt(ring2, encrypt(ring, "v", "/n"), "/n") == "v"  # old key still decrypts

    os.chmod(js, 0o640)
    with pytest.raises(KeyringError, match="chmod 600"):
        load_or_create_keyring(tmp_path / "k", {ENV_KEY_FILE: str(js)})


def test_env_key_file_missing(tmp_path):
    with pytest.raises(KeyringError, match="no such file"):
        load_or_create_keyring(tmp_path / "k", {ENV_KEY_FILE: str(tmp_path / "nope")})
