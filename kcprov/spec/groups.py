"""Groups: nested groups with their roles and attributes, the realm's default groups.

The realm file's part of this kind (its resource kind is `kcprov.resources.groups`).
A group is known by its path, the names from the top joined with `/`
(`/staff/mcp-admins`), which is how Keycloak's `defaultGroups`, a user's
groups and the group-membership mapper name it; so a name cannot hold `/`
(Keycloak 26.7 accepts one, and then `/a/b` names two different groups).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, Field

from kcprov.lock import LOCK_GROUP
from kcprov.spec.fields import ClientId, Label, MultiStrMap, RoleName, Spec, spec_error
from kcprov.spec.findings import Finding, unique, unknown
from kcprov.spec.known import group_paths, realm_roles, role_grants
from kcprov.spec.yamldoc import Path

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec


def _group_name(value: str) -> str:
    shown = repr(value if len(value) <= 40 else value[:37] + "...")
    if "/" in value:
        raise spec_error(f"group name {shown} contains '/'",
                         hint="paths join group names with '/' (/staff/mcp-admins): nest the group under subgroups instead")
    if value != value.strip():
        raise spec_error(f"group name {shown} has leading or trailing whitespace", hint="remove it")
    return value


GroupName = Annotated[Label, Field(min_length=1), AfterValidator(_group_name)]


class Group(Spec):
    """A group: its members get its roles (and those of the groups above it)."""

    name: GroupName = Field(description="Group name, unique among its siblings; no '/' (the path separator).")
    description: str | None = Field(None, description="Description shown in the admin console.")
    attributes: MultiStrMap | None = Field(None, description="Group attributes (a value or a list of values); only the keys given are managed.")
    realm_roles: list[RoleName] | None = Field(None, description="Realm roles the members get: names from roles, or offline_access, uma_authorization. Exactly these.")
    client_roles: dict[ClientId, list[RoleName]] | None = Field(None, description="Client roles the members get: client_id -> role names. Exactly these (with realm_roles).")
    subgroups: list[Group] = Field(default_factory=list, description="Groups inside this one, by path /<this group>/<name>.")


def walk(groups: list[Group], path: Path = ("groups",), parent: str = "") -> Iterator[tuple[Path, str, Group]]:
    """(file path, group path, group) of every group, parents before their subgroups."""
    for i, group in enumerate(groups):
        where, full = (*path, i), f"{parent}/{group.name}"
        yield where, full, group
        yield from walk(group.subgroups, (*where, "subgroups"), full)


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Sibling names are unique, granted roles exist, users and default groups name groups of the file."""
    yield from unique(((("groups", i, "name"), g.name) for i, g in enumerate(spec.groups)), "group name",
                      owner=" at the top level")
    for i, group in enumerate(spec.groups):
        if group.name == LOCK_GROUP:
            yield Finding(("groups", i, "name"), f"group name '{LOCK_GROUP}' is kcprov's realm lock",
                          "choose another name: kcprov creates and deletes this group around every apply")
    known_roles = realm_roles(spec)
    for where, full, group in walk(spec.groups):
        subs = group.subgroups
        yield from unique((((*where, "subgroups", j, "name"), s.name) for j, s in enumerate(subs)), "group name",
                          owner=f" in group '{full}'")
        for j, role in enumerate(group.realm_roles or ()):
            if role not in known_roles:
                yield unknown((*where, "realm_roles", j), "realm role", role, known_roles, "define it under roles")
        yield from role_grants(spec, (*where, "client_roles"), group.client_roles, realm_key=False)
    paths = group_paths(spec)
    for i, user in enumerate(spec.users):
        yield from _references(("users", i, "groups"), user.groups, paths, f" of user '{user.username}'")
    yield from _references(("default_groups",), spec.default_groups, paths, " in default_groups")


def _references(path: Path, named: list[str] | None, paths: set[str], owner: str) -> Iterator[Finding]:
    how = "define it under groups and write its path, e.g. /staff/mcp-admins"
    yield from unique((((*path, j), p) for j, p in enumerate(named or ())), "group", owner=owner)
    for j, group in enumerate(named or ()):
        if group not in paths:
            yield unknown((*path, j), "group", group, paths, how)
