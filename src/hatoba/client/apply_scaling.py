"""The app file's ``scaling:`` blocks against a control plane: reading what it has, asking
it to check each block before any write, and applying the plan's changes (after services,
since a scalable target needs its service).

A change's ``changed`` names the calls to make (``hatoba.model.appfile_diff``): ``target``
(RegisterScalableTarget), ``policy:NAME`` / ``-policy:NAME`` (put / delete),
``action:NAME`` / ``-action:NAME``, and ``deregister``.
"""

from __future__ import annotations

from hatoba.client.errors import ApiError
from hatoba.client.http import HatobaClient
from hatoba.model.appfile import AppFile, split_path
from hatoba.model.appfile_diff import Action, Change
from hatoba.model.appfile_scaling import ScalingDecl, action_body, policy_body
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.scaling_view import ScalingDescription


def read_scaling(client: HatobaClient, app: AppFile) -> dict[str, ScalingDescription]:
    """The autoscaling of each service of the file that has a scalable target."""
    out: dict[str, ScalingDescription] = {}
    for name in app.services:
        try:
            out[name] = client.describe_scaling(name)
        except ApiError as exc:
            if exc.status != 404:
                raise
    return out


def check_scaling(client: HatobaClient, app: AppFile) -> None:
    """Every ``scaling:`` block checked by the server (metric specs, step intervals: what
    the file's loader cannot know); ``ValidationFailed`` with the file's lines. A token
    that may not ask (a viewer running ``diff``) skips the check: apply needs a deployer."""
    errors: list[FieldError] = []
    for name, svc in app.services.items():
        if svc.scaling is None:
            continue
        try:
            client.validate_scaling(svc.scaling.block)
        except ApiError as exc:
            if exc.status == 403:
                return
            if exc.status != 422 or not exc.errors:
                raise
            at = ("services", name, "scaling")
            errors += [app.error((*at, *split_path(e.path)), e.message) for e in exc.errors]
    if errors:
        raise ValidationFailed(errors, app.filename)


def apply_scaling(client: HatobaClient, change: Change, decl: ScalingDecl | None) -> str:
    """Make the change's calls, in order; returns what was done, for the progress line."""
    name = change.name
    done: list[str] = []
    for op in change.changed:
        kind, _, item = op.partition(":")
        if op == "deregister":
            client.deregister_scalable_target(name)
            done.append("deregistered")
            continue
        assert decl is not None, op
        if kind == "target":
            body = dict(decl.target)
            if change.action != Action.CREATE and decl.scheduled_actions:
                body.pop("minCapacity")  # the scheduled actions own the bounds now
                body.pop("maxCapacity")
            target = client.register_scalable_target(name, body)
            done.append(f"min {target.min_capacity}, max {target.max_capacity}")
        elif kind == "policy":
            client.put_scaling_policy(name, item, policy_body(decl.policies[item]))
            done.append(f"policy {item}")
        elif kind == "-policy":
            client.delete_scaling_policy(name, item)
            done.append(f"policy {item} deleted")
        elif kind == "action":
            client.put_scheduled_action(name, item, action_body(decl.scheduled_actions[item]))
            done.append(f"scheduled action {item}")
        elif kind == "-action":
            client.delete_scheduled_action(name, item)
            done.append(f"scheduled action {item} deleted")
    return ", ".join(done)


def stop_scaling(client: HatobaClient, names: list[str]) -> None:
    """Deregister the services' scalable targets (else the autoscaler would scale a
    service being stopped back to its minCapacity); one without a target is left as is."""
    for name in names:
        try:
            client.deregister_scalable_target(name)
        except ApiError as exc:
            if exc.status != 404:
                raise
