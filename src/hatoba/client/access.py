"""Parameters, API tokens and the audit log through the REST API.

Kept apart from ``http.py`` (tasks and task definitions) so each file stays small; both use
the same ``HatobaClient`` connection and error handling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hatoba.client.http import HatobaClient
from hatoba.model.access import ApiToken, AuditEntry, Role
from hatoba.model.params import ParameterType, ParameterView


def _path(name: str) -> str:
    """``/prod/db/password`` -> ``prod/db/password`` for ``/v1/parameters/{name:path}``."""
    return quote(name.lstrip("/"), safe="/")


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str  # shown once; only its hash is stored


class AccessClient:
    def __init__(self, client: HatobaClient) -> None:
        self._c = client

    # -- parameters -------------------------------------------------------------------------
    def put_parameter(
        self,
        name: str,
        value: str,
        *,
        type_: ParameterType = ParameterType.STRING,
        overwrite: bool = False,
        description: str | None = None,
        labels: list[str] | None = None,
    ) -> ParameterView:
        body: dict[str, Any] = {"type": type_.value, "value": value, "overwrite": overwrite}
        if description is not None:
            body["description"] = description
        if labels:
            body["labels"] = labels
        return ParameterView.model_validate(
            self._c.request("PUT", f"/v1/parameters/{_path(name)}", json=body)
        )

    def get_parameter(
        self,
        name: str,
        *,
        decrypt: bool = False,
        version: int | None = None,
        label: str | None = None,
    ) -> ParameterView:
        params: dict[str, Any] = {"withDecryption": str(decrypt).lower()}
        if version is not None:
            params["version"] = version
        if label is not None:
            params["label"] = label
        return ParameterView.model_validate(
            self._c.request("GET", f"/v1/parameters/{_path(name)}", params=params)
        )

    def list_parameters(
        self, path: str = "/", *, recursive: bool = True, decrypt: bool = False
    ) -> list[ParameterView]:
        params = {
            "path": path,
            "recursive": str(recursive).lower(),
            "withDecryption": str(decrypt).lower(),
        }
        body = self._c.request("GET", "/v1/parameters", params=params)
        return [ParameterView.model_validate(p) for p in body["parameters"]]

    def parameter_history(self, name: str, *, decrypt: bool = False) -> list[ParameterView]:
        body = self._c.request(
            "GET",
            f"/v1/parameter-history/{_path(name)}",
            params={"withDecryption": str(decrypt).lower()},
        )
        return [ParameterView.model_validate(p) for p in body["parameters"]]

    def delete_parameter(self, name: str) -> int:
        body = self._c.request("DELETE", f"/v1/parameters/{_path(name)}")
        return int(body["deletedVersions"])

    def label_parameter(self, name: str, version: int, labels: list[str]) -> ParameterView:
        return ParameterView.model_validate(
            self._c.request(
                "POST",
                f"/v1/parameter-labels/{_path(name)}",
                json={"version": version, "labels": labels},
            )
        )

    def rotate_key(self) -> dict[str, Any]:
        body: dict[str, Any] = self._c.request("POST", "/v1/keyring/rotate")
        return body

    # -- tokens and audit ---------------------------------------------------------------------
    def create_token(
        self,
        name: str,
        role: Role,
        *,
        scopes: list[str] | None = None,
        can_decrypt: bool = False,
        expires_in_hours: float | None = None,
    ) -> CreatedToken:
        body: dict[str, Any] = {
            "name": name,
            "role": role.value,
            "scopes": scopes or [],
            "canDecrypt": can_decrypt,
        }
        if expires_in_hours is not None:
            body["expiresInHours"] = expires_in_hours
        out = self._c.request("POST", "/v1/tokens", json=body)
        return CreatedToken(ApiToken.model_validate(_with_hash(out["token"])), out["secret"])

    def list_tokens(self) -> list[ApiToken]:
        body = self._c.request("GET", "/v1/tokens")
        return [ApiToken.model_validate(_with_hash(t)) for t in body["tokens"]]

    def revoke_token(self, token_id: str) -> ApiToken:
        return ApiToken.model_validate(
            _with_hash(self._c.request("DELETE", f"/v1/tokens/{quote(token_id, safe='')}"))
        )

    def audit(self, *, limit: int = 100, before_seq: int | None = None) -> list[AuditEntry]:
        params: dict[str, Any] = {"limit": limit}
        if before_seq is not None:
            params["beforeSeq"] = before_seq
        body = self._c.request("GET", "/v1/audit", params=params)
        return [AuditEntry.model_validate(e) for e in body["entries"]]


def _with_hash(data: dict[str, Any]) -> dict[str, Any]:
    """The API never sends a token's hash; the model requires the field."""
    return {"secretHash": "", **data}
