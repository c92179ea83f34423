"""Resolve an ECS ``user`` ("uid", "uid:gid", "name", "name:group") to numeric ids.

Done in the control plane before the shim starts, so an unknown user is a clear start error
instead of a cryptic failure inside the shim. Follows Docker: a numeric uid missing from
/etc/passwd runs with gid 0; supplementary groups come from /etc/group.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from hatoba.drivers.protocol import StartError


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _cannot(message: str) -> StartError:
    return StartError(f"CannotStartContainerError: {message}")


def resolve_user(user: str) -> ResolvedUser:
    """Raises StartError naming the user or group that does not exist."""
    name, _, group = user.partition(":")
    if not name:
        raise _cannot(f'invalid user "{user}"')
    entry: pwd.struct_passwd | None
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        if not name.isdigit():
            raise _cannot(
                f"unable to find user {name}: no matching entries in passwd file"
            ) from None
        entry = None
    uid = entry.pw_uid if entry else int(name)
    gid = entry.pw_gid if entry else 0
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise _cannot(
                f"unable to find group {group}: no matching entries in group file"
            ) from None
    groups: tuple[int, ...] = (gid,)
    if entry:
        groups = tuple(dict.fromkeys([gid, *os.getgrouplist(entry.pw_name, gid)]))
    return ResolvedUser(uid, gid, groups, entry.pw_dir if entry else "/")
