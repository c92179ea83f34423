"""Encryption: round trip, name binding, tamper detection, rotation, no leaks."""

from __future__ import annotations

import base64

import pytest

from hatoba.secrets.crypto import (
    DecryptionFailed,
    decrypt,
    encrypt,
    needs_reencrypt,
    parse_envelope,
    reencrypt,
)
from hatoba.secrets.keyring import Keyring, KeyringError, key_id_of

SECRET = "correct-horse-battery-staple-7f3a9c"
NAME = "/prod/cardscan/db/password"


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate("test")


def _no_leak(exc: BaseException, *also: str) -> None:
    for text in (str(exc), repr(exc)):
        assert SECRET not in text
        for x in also:
            assert x not in text


def test_round_trip_and_envelope_shape(ring):
    env = encrypt(ring, SECRET, NAME)
    assert decrypt(ring, env, NAME) == SECRET
    prefix, key_id, _nonce, _sealed = env.split(":")
    assert (prefix, key_id) == ("hb1", ring.active_id)
    assert SECRET not in env and "=" not in env
    assert len(parse_envelope(env).nonce) == 12


def test_unicode_and_fresh_nonce_each_time(ring):
    a, b = encrypt(ring, "pässwörd ☃", NAME), encrypt(ring, "pässwörd ☃", NAME)
    assert a != b
    assert decrypt(ring, a, NAME) == decrypt(ring, b, NAME) == "pässwörd ☃"


def test_ciphertext_bound_to_name(ring):
    env = encrypt(ring, SECRET, NAME)
    with pytest.raises(DecryptionFailed, match="another parameter name") as info:
        decrypt(ring, env, "/prod/other/password")
    _no_leak(info.value)


@pytest.mark.parametrize("part", [2, 3])
def test_tampering_detected(ring, part):
    env = encrypt(ring, SECRET, NAME)
    parts = env.split(":")
    raw = bytearray(base64.urlsafe_b64decode(parts[part] + "=" * (-len(parts[part]) % 4)))
    raw[0] ^= 1
    parts[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(DecryptionFailed) as info:
        decrypt(ring, ":".join(parts), NAME)
    _no_leak(info.value)


@pytest.mark.parametrize(
    "bad",
    ["", "plain", "hb2:abcd:AAAA:AAAA", "hb1:abcd:!!!:AAAA", "hb1:abcd:AAAA:AAAA", "hb1:a:b"],
)
def test_malformed_envelopes(ring, bad):
    with pytest.raises(DecryptionFailed):
        decrypt(ring, bad, NAME)


def test_unknown_key_and_wrong_key(ring):
    env = encrypt(ring, SECRET, NAME)
    other = Keyring.generate("other")
    with pytest.raises(DecryptionFailed, match="not in the keyring") as info:
        decrypt(other, env, NAME)
    _no_leak(info.value)
    # Same key id but a different key (forged id): authentication fails, nothing leaks.
    forged = env.replace(ring.active_id, other.active_id, 1)
    with pytest.raises(DecryptionFailed, match="authentication failed") as info2:
        decrypt(other, forged, NAME)
    _no_leak(info2.value, base64.b64encode(other.material(other.active_id)).decode())


def test_rotation_without_downtime(ring):
    old_id = ring.active_id
    old_env = encrypt(ring, SECRET, NAME)
    rotated = ring.rotate()
    assert rotated.key_ids == (old_id, rotated.active_id) and rotated.active_id != old_id
    assert ring.active_id == old_id  # immutable: the old ring is untouched
    # Reads work with both keys; writes use the new one.
    assert decrypt(rotated, old_env, NAME) == SECRET
    new_env = encrypt(rotated, "new", NAME)
    assert parse_envelope(new_env).key_id == rotated.active_id
    assert needs_reencrypt(old_env, rotated) and not needs_reencrypt(new_env, rotated)
    # Background pass, then retire the old key.
    moved = reencrypt(rotated, old_env, NAME)
    assert not needs_reencrypt(moved, rotated)
    assert reencrypt(rotated, new_env, NAME) == new_env
    final = rotated.retire(old_id)
    assert final.key_ids == (rotated.active_id,)
    assert decrypt(final, moved, NAME) == SECRET
    assert decrypt(final, new_env, NAME) == "new"
    with pytest.raises(DecryptionFailed, match="not in the keyring"):
        decrypt(final, old_env, NAME)


def test_retire_rules(ring):
    with pytest.raises(KeyringError, match="active"):
        ring.retire(ring.active_id)
    with pytest.raises(KeyringError, match="not in the keyring"):
        ring.rotate().retire("deadbeef")


def test_reencrypt_keeps_name_binding(ring):
    env = encrypt(ring, SECRET, NAME)
    with pytest.raises(DecryptionFailed) as info:
        reencrypt(ring.rotate(), env, "/elsewhere")
    _no_leak(info.value)


def test_keyring_repr_has_no_key_material(ring):
    rotated = ring.rotate()
    text = repr(rotated) + str(rotated)
    for key_id in rotated.key_ids:
        key = rotated.material(key_id)
        for form in (base64.b64encode(key), base64.urlsafe_b64encode(key), key.hex().encode()):
            assert form.decode().rstrip("=") not in text
        assert key_id in text
    assert key_id_of(rotated.material(rotated.active_id)) == rotated.active_id


def test_keyring_validates_its_keys():
    key = b"k" * 32
    with pytest.raises(KeyringError, match="does not match"):
        Keyring({"00000000": key}, "00000000", source="t")
    with pytest.raises(KeyringError, match="not 32"):
        Keyring({key_id_of(b"short"): b"short"}, key_id_of(b"short"), source="t")
    with pytest.raises(KeyringError, match="active key"):
        Keyring({key_id_of(key): key}, "ffffffff", source="t")
