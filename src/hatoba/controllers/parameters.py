"""The parameter store: put, get, get-by-path, history, label, delete, key rotation, and the
``SecretResolver`` the agent uses to inject secrets at task start.

Why the keyring is loaded lazily: a control plane that never stores a SecureString never
needs a key file; once one exists, a missing key file is an error (``create=False``), not a
fresh key that silently cannot read the old secrets. Writes and rotation are serialized by
one lock, so no value is ever sealed under a key that a rotation is about to retire.
Messages never quote a value: they may be secrets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hatoba.model.access import Principal
from hatoba.model.clock import Clock
from hatoba.model.errors import FieldError, Forbidden, HatobaError, NotFound, ValidationFailed
from hatoba.model.params import (
    SUBJECT,
    ParameterType,
    ParameterView,
    Selector,
    StoredParameter,
    check_put,
    label_errors,
    name_errors,
    parse_type,
    path_errors,
    pick_version,
)
from hatoba.secrets.crypto import decrypt, encrypt, needs_reencrypt, reencrypt
from hatoba.secrets.keyring import Keyring, load_or_create_keyring, save_keyring
from hatoba.secrets.protocol import SecretRef, SecretUnavailable
from hatoba.secrets.refs import parse_refs
from hatoba.store.protocol import Store

MAX_SWEEPS = 5  # re-encryption passes before a rotation gives up retiring old keys


@dataclass(frozen=True)
class Rotation:
    active_key_id: str
    reencrypted: int
    retired_key_ids: list[str]


def param_scope(name: str) -> str:
    return f"param:{name}"


def check_reach(principal: Principal, name: str) -> None:
    if not principal.reaches(param_scope(name)):
        raise Forbidden(
            f"token {principal.name!r} is scoped to {', '.join(principal.scopes)}; "
            f"it does not reach {param_scope(name)}"
        )


def check_decrypt(principal: Principal, with_decryption: bool) -> None:
    if with_decryption and not principal.can_decrypt:
        raise Forbidden(
            f"token {principal.name!r} may not read secret values (withDecryption needs "
            "a token created with canDecrypt)"
        )


def _validated(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailed(errors, SUBJECT)


class Parameters:
    def __init__(
        self, store: Store, keyring_path: Path, environ: Mapping[str, str], clock: Clock
    ) -> None:
        self._store = store
        self._path = keyring_path
        self._environ = dict(environ)
        self._clock = clock
        self._keyring: Keyring | None = None
        self._lock = asyncio.Lock()

    async def _ring(self) -> Keyring:
        if self._keyring is None:
            exists = bool(await self._store.secure_parameter_versions())
            self._keyring = load_or_create_keyring(self._path, self._environ, create=not exists)
        return self._keyring

    async def _plain(self, stored: StoredParameter) -> str:
        if stored.type is not ParameterType.SECURE_STRING:
            assert stored.value is not None
            return stored.value
        assert stored.ciphertext is not None
        return decrypt(await self._ring(), stored.ciphertext, aad=stored.name)

    async def _view(self, stored: StoredParameter, with_decryption: bool) -> ParameterView:
        secure = stored.type is ParameterType.SECURE_STRING
        plaintext = await self._plain(stored) if secure and with_decryption else None
        return ParameterView.of(stored, plaintext)

    # -- writes ------------------------------------------------------------------------
    async def put(
        self,
        principal: Principal,
        name: str,
        type_: str,
        value: str,
        *,
        overwrite: bool = False,
        description: str | None = None,
        labels: Sequence[str] = (),
    ) -> ParameterView:
        ptype = parse_type(type_)
        check_put(name, ptype, value, labels)
        if description is not None and len(description) > 1024:
            _validated([FieldError("description", "must be at most 1024 characters")])
        check_reach(principal, name)
        async with self._lock:
            secure = ptype is ParameterType.SECURE_STRING
            stored = StoredParameter(
                name=name,
                type=ptype,
                version=1,  # the store assigns the real one
                value=None if secure else value,
                ciphertext=encrypt(await self._ring(), value, aad=name) if secure else None,
                labels=tuple(labels),
                description=description,
                last_modified_at=self._clock.now(),
                last_modified_by=principal.name,
            )
            written = await self._store.put_parameter(stored, overwrite=overwrite)
        # The value is never echoed back, whatever the type: the caller just sent it.
        return ParameterView.of(written).model_copy(update={"value": None, "redacted": True})

    async def label(
        self, principal: Principal, name: str, version: int, labels: Sequence[str]
    ) -> ParameterView:
        _validated(name_errors(name) + label_errors(labels))
        check_reach(principal, name)
        return ParameterView.of(await self._store.label_parameter_version(name, version, labels))

    async def delete(self, principal: Principal, name: str) -> int:
        _validated(name_errors(name))
        check_reach(principal, name)
        deleted = await self._store.delete_parameter(name)
        if not deleted:
            raise NotFound(f"parameter {name} not found")
        return deleted

    # -- reads -------------------------------------------------------------------------
    async def get(
        self, principal: Principal, selector: Selector, *, with_decryption: bool = False
    ) -> ParameterView:
        _validated(name_errors(selector.name))
        check_reach(principal, selector.name)
        check_decrypt(principal, with_decryption)
        versions = await self._store.get_parameter_versions(selector.name)
        return await self._view(pick_version(versions, selector), with_decryption)

    async def get_by_path(
        self,
        principal: Principal,
        path: str,
        *,
        recursive: bool = False,
        with_decryption: bool = False,
    ) -> list[ParameterView]:
        """Parameters under ``path`` that the principal's scopes reach (others are left out)."""
        _validated(path_errors(path))
        check_decrypt(principal, with_decryption)
        found = await self._store.list_parameters(path, recursive=recursive)
        reached = [p for p in found if principal.reaches(param_scope(p.name))]
        return [await self._view(p, with_decryption) for p in reached]

    async def history(
        self, principal: Principal, name: str, *, with_decryption: bool = False
    ) -> list[ParameterView]:
        _validated(name_errors(name))
        check_reach(principal, name)
        check_decrypt(principal, with_decryption)
        versions = await self._store.get_parameter_versions(name)
        if not versions:
            raise NotFound(f"parameter {name} not found")
        return [await self._view(v, with_decryption) for v in versions]

    async def value_of(self, selector: Selector) -> str:
        """The plaintext a selector names, for task start (no principal: the agent's own)."""
        versions = await self._store.get_parameter_versions(selector.name)
        return await self._plain(pick_version(versions, selector))

    # -- key rotation ------------------------------------------------------------------
    async def rotate_key(self) -> Rotation:
        """New active key (saved before use), every SecureString re-sealed under it, then
        the old keys retired (saved again). A crash at any point leaves a readable store."""
        async with self._lock:
            old = await self._ring()
            ring = old.rotate()
            save_keyring(ring, self._path)
            self._keyring = ring
            count = 0
            for _ in range(MAX_SWEEPS):
                moved, pending = await self._sweep(ring)
                count += moved
                if not pending:
                    break
            else:
                return Rotation(ring.active_id, count, [])
            retired = [k for k in ring.key_ids if k != ring.active_id]
            for key_id in retired:
                ring = ring.retire(key_id)
            save_keyring(ring, self._path)
            self._keyring = ring
            return Rotation(ring.active_id, count, retired)

    async def _sweep(self, ring: Keyring) -> tuple[int, int]:
        """Re-encrypt what is under an old key: (moved, still pending after lost races)."""
        moved = pending = 0
        for p in await self._store.secure_parameter_versions():
            assert p.ciphertext is not None
            if not needs_reencrypt(p.ciphertext, ring):
                continue
            fresh = reencrypt(ring, p.ciphertext, aad=p.name)
            if await self._store.replace_ciphertext(p.name, p.version, p.ciphertext, fresh):
                moved += 1
            else:
                pending += 1  # changed or deleted meanwhile: the next sweep re-reads it
        return moved, pending


class ParameterStoreResolver:
    """``SecretResolver`` over the parameter store: ``secrets: [{name, valueFrom}]`` ->
    environment. Reasons name the parameter and variable, never a value."""

    def __init__(self, parameters: Parameters) -> None:
        self._parameters = parameters

    async def resolve(self, refs: Sequence[SecretRef]) -> Mapping[str, str]:
        selectors = parse_refs(refs)
        out: dict[str, str] = {}
        problems: list[str] = []
        for env_name, sel in selectors.items():
            what = f"parameter {sel.name}"
            if sel.version is not None:
                what += f" version {sel.version}"
            elif sel.label is not None:
                what += f" label {sel.label}"
            try:
                out[env_name] = await self._parameters.value_of(sel)
            except NotFound:
                problems.append(f"{what} (for {env_name}) not found")
            except HatobaError as exc:  # DecryptionFailed, KeyringError: value-free messages
                problems.append(f"{what} (for {env_name}): {exc.code}: {exc}")
        if problems:
            raise SecretUnavailable(
                "ResourceInitializationError: unable to retrieve secret from parameter "
                "store: " + "; ".join(problems)
            )
        return out
