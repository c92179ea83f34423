"""Encrypt SecureString values: AES-256-GCM under the keyring's active key.

Why this shape: GCM authenticates as well as encrypts, so tampering is detected rather than
decrypted into garbage; the associated data is the parameter name, so a ciphertext copied
onto another parameter (or a row swapped in the database) refuses to decrypt. Each value
gets a fresh random 96-bit nonce. The envelope names its key, so after a rotation old
values still decrypt and ``needs_reencrypt`` finds the ones a background pass should move:

    hb1:<key id>:<base64url nonce>:<base64url ciphertext+tag>

``DecryptionFailed`` says which step failed and never quotes plaintext or key material.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hatoba.model.errors import HatobaError
from hatoba.secrets.keyring import Keyring

PREFIX = "hb1"
NONCE_BYTES = 12


class DecryptionFailed(HatobaError):
    """A SecureString could not be decrypted: wrong/retired key, tampering or bad data."""

    code = "DecryptionFailed"
    http_status = 500


class Envelope(NamedTuple):
    key_id: str
    nonce: bytes
    sealed: bytes  # ciphertext followed by the 16-byte tag


def encrypt(keyring: Keyring, plaintext: str, aad: str) -> str:
    """Seal ``plaintext`` under the active key, bound to ``aad`` (the parameter name)."""
    key_id = keyring.active_id
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keyring.material(key_id)).encrypt(
        nonce, plaintext.encode("utf-8"), aad.encode("utf-8")
    )
    return f"{PREFIX}:{key_id}:{_b64e(nonce)}:{_b64e(sealed)}"


def decrypt(keyring: Keyring, envelope: str, aad: str) -> str:
    """Open an envelope made by ``encrypt`` with the same ``aad``, under any key in the ring."""
    env = parse_envelope(envelope)
    try:
        key = keyring.material(env.key_id)
    except KeyError:
        raise DecryptionFailed(
            f"encrypted with key {env.key_id}, which is not in the keyring "
            f"(keys: {', '.join(keyring.key_ids)}); was it retired, or is this another "
            f"master key?"
        ) from None
    try:
        plain = AESGCM(key).decrypt(env.nonce, env.sealed, aad.encode("utf-8"))
    except InvalidTag:
        raise DecryptionFailed(
            "authentication failed: the ciphertext was altered, or belongs to another "
            "parameter name"
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionFailed("decrypted value is not UTF-8") from None


def parse_envelope(envelope: str) -> Envelope:
    """Split an envelope into its parts; ``DecryptionFailed`` if it is not one."""
    parts = envelope.split(":")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise DecryptionFailed(f"not an {PREFIX} envelope")
    _, key_id, nonce_text, sealed_text = parts
    try:
        nonce, sealed = _b64d(nonce_text), _b64d(sealed_text)
    except (binascii.Error, ValueError):
        raise DecryptionFailed("malformed envelope: bad base64") from None
    if len(nonce) != NONCE_BYTES or len(sealed) < 16:
        raise DecryptionFailed("malformed envelope: wrong nonce or ciphertext length")
    return Envelope(key_id, nonce, sealed)


def needs_reencrypt(envelope: str, keyring: Keyring) -> bool:
    """Whether a value is sealed under a key other than the active one (after a rotation)."""
    return parse_envelope(envelope).key_id != keyring.active_id


def reencrypt(keyring: Keyring, envelope: str, aad: str) -> str:
    """The same value sealed under the active key; unchanged if it already is."""
    if not needs_reencrypt(envelope, keyring):
        return envelope
    return encrypt(keyring, decrypt(keyring, envelope, aad), aad)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)
