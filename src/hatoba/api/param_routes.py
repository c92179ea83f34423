"""REST endpoints of the parameter store (SSM's operations) and key rotation.

A parameter's name goes in the URL without its leading slash: ``/v1/parameters/prod/db/pw``
is ``/prod/db/pw``. Values come back only with ``withDecryption=true`` and a token that
may decrypt; otherwise a SecureString's ``value`` is absent and ``redacted`` is true.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ConfigDict, Field

from hatoba.api import auth
from hatoba.api.services import ApiServices
from hatoba.model.access import Role
from hatoba.model.base import WireModel
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.params import ParameterView, Selector, parse_selector

router = APIRouter(
    prefix="/v1", dependencies=[Depends(auth.require(Role.VIEWER))], tags=["parameters"]
)


async def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


Svc = Annotated[ApiServices, Depends(services)]
WithDecryption = Annotated[bool, Query(alias="withDecryption")]


class PutParameterBody(WireModel):
    model_config = ConfigDict(hide_input_in_errors=True)

    type: str = "String"
    value: str = Field(repr=False)
    overwrite: bool = False
    description: str | None = None
    labels: list[str] = Field(default_factory=list)


class LabelBody(WireModel):
    version: int
    labels: list[str]


class ParameterList(WireModel):
    parameters: list[ParameterView]


class Deleted(WireModel):
    deleted_versions: int


class RotationResult(WireModel):
    active_key_id: str
    reencrypted: int
    retired_key_ids: list[str]


def _name(raw: str) -> str:
    return "/" + raw


def _selector(name: str, version: int | None, label: str | None) -> Selector:
    if version is not None and label is not None:
        raise ValidationFailed([FieldError("version", "give a version or a label, not both")])
    if version is None and label is None:
        return parse_selector(name, "name")  # also takes /a/b:3 and /a/b:LABEL
    return Selector(name, version, label)


@router.put("/parameters/{name:path}", response_model=ParameterView)
async def put_parameter(
    svc: Svc, principal: auth.Deployer, name: str, body: PutParameterBody
) -> ParameterView:
    """PutParameter: a new version (``overwrite`` needed when the name exists)."""
    return await svc.parameters.put(
        principal,
        _name(name),
        body.type,
        body.value,
        overwrite=body.overwrite,
        description=body.description,
        labels=body.labels,
    )


@router.get("/parameters/{name:path}", response_model=ParameterView)
async def get_parameter(
    svc: Svc,
    principal: auth.Viewer,
    name: str,
    with_decryption: WithDecryption = False,
    version: Annotated[int | None, Query(ge=1)] = None,
    label: str | None = None,
) -> ParameterView:
    selector = _selector(_name(name), version, label)
    return await svc.parameters.get(principal, selector, with_decryption=with_decryption)


@router.get("/parameters", response_model=ParameterList)
async def get_parameters_by_path(
    svc: Svc,
    principal: auth.Viewer,
    path: str = "/",
    recursive: bool = True,
    with_decryption: WithDecryption = False,
) -> ParameterList:
    found = await svc.parameters.get_by_path(
        principal, path, recursive=recursive, with_decryption=with_decryption
    )
    return ParameterList(parameters=found)


@router.get("/parameter-history/{name:path}", response_model=ParameterList)
async def get_parameter_history(
    svc: Svc, principal: auth.Viewer, name: str, with_decryption: WithDecryption = False
) -> ParameterList:
    found = await svc.parameters.history(principal, _name(name), with_decryption=with_decryption)
    return ParameterList(parameters=found)


@router.delete("/parameters/{name:path}", response_model=Deleted)
async def delete_parameter(svc: Svc, principal: auth.Deployer, name: str) -> Deleted:
    return Deleted(deleted_versions=await svc.parameters.delete(principal, _name(name)))


@router.post("/parameter-labels/{name:path}", response_model=ParameterView)
async def label_parameter_version(
    svc: Svc, principal: auth.Deployer, name: str, body: LabelBody
) -> ParameterView:
    """LabelParameterVersion: each label moves here from whichever version held it."""
    return await svc.parameters.label(principal, _name(name), body.version, body.labels)


@router.post("/keyring/rotate", response_model=RotationResult, tags=["access"])
async def rotate_key(svc: Svc, _: auth.Admin) -> RotationResult:
    """New master key; every SecureString re-encrypted under it; old keys retired."""
    r = await svc.parameters.rotate_key()
    return RotationResult(
        active_key_id=r.active_key_id,
        reencrypted=r.reencrypted,
        retired_key_ids=r.retired_key_ids,
    )
