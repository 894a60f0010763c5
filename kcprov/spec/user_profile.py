"""The declarative user profile: attributes, their validations and permissions, the unmanaged-attribute policy.

The realm file's part of this kind (its resource kind is `kcprov.resources.user_profile`).
Keycloak 26 (checked on 26.7.3) keeps a user attribute only if the profile declares it or its
unmanaged-attribute policy lets admins write undeclared ones; an attribute without `edit: [admin]`
is dropped even when an admin writes it. Names follow Keycloak's rule (ASCII letters, digits,
`. _ -`), and the only roles a permission or `required` may name are `admin` and `user`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from kcprov.spec.fields import Flag, Label, Spec, _name_rule
from kcprov.spec.findings import Finding, unique, unknown
from kcprov.spec.known import BUILTIN_SCOPES

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec

Policy = Literal["DISABLED", "ENABLED", "ADMIN_VIEW", "ADMIN_EDIT"]
Role = Literal["admin", "user"]
AttributeName = Annotated[str, Field(min_length=1), _name_rule(
    "attribute name", r"[A-Za-z0-9._-]",
    "Keycloak allows only ASCII letters, digits and . _ - in user profile names, e.g. department", starts_alnum=False,
)]
BUILTIN_GROUP = "user-metadata"  # the attribute group every new realm's profile has


class Permissions(Spec):
    """Who sees and who changes the attribute: `admin` (the Admin API and console), `user` (the account console, login pages)."""

    view: list[Role] | None = Field(None, description="Who can see it: admin, user (exactly these).")
    edit: list[Role] | None = Field(None, description="Who can change it: admin, user (exactly these; edit implies view).")


class Required(Spec):
    """When the attribute must have a value; neither key: always."""

    roles: list[Role] | None = Field(None, description="Required when these edit it: admin, user.")
    scopes: list[str] | None = Field(None, description="Required only when a client requests one of these client scopes.")


class Selector(Spec):
    """When the attribute is part of the profile at all."""

    scopes: list[str] = Field(default_factory=list, description="Only when a client requests one of these client scopes ([]: always).")


class ProfileAttribute(Spec):
    """One attribute of the user profile (username, email, firstName, lastName are built in: changeable, never deleted)."""

    name: AttributeName = Field(description="Attribute name, unique in the profile; users' attributes use it as key.")
    display_name: Label | None = Field(None, description="Label on forms; ${key} for a message bundle key.")
    validations: dict[str, dict[str, Any]] | None = Field(None, description="Validator name -> its options, e.g. {length: {max: 64}}; exactly these.")
    annotations: dict[str, Any] | None = Field(None, description="UI hints, e.g. {inputType: select}; exactly these.")
    permissions: Permissions | None = Field(None, description="Who may view and edit it. A new attribute: admins only.")
    required: Flag | Required | None = Field(None, description="true (always), false (never), or {roles, scopes} saying when.")
    selector: Selector | None = Field(None, description="Only for some client scopes: {scopes: [...]}.")
    multivalued: Flag | None = Field(None, description="Whether it holds several values.")
    group: str | None = Field(None, description="The attribute group it is shown in (a name under groups, or user-metadata).")


class ProfileGroup(Spec):
    """A group of attributes, shown together on forms."""

    name: AttributeName = Field(description="Group name, unique in the profile.")
    display_header: Label | None = Field(None, description="Heading of the group on forms.")
    display_description: Label | None = Field(None, description="Text under the heading.")
    annotations: dict[str, Any] | None = Field(None, description="UI hints; exactly these.")


class UserProfile(Spec):
    """The realm's declarative user profile; only what the file writes is managed."""

    unmanaged_attribute_policy: Policy | None = Field(None, description="Attributes the profile does not declare: DISABLED (dropped, Keycloak's default), ENABLED, ADMIN_VIEW, ADMIN_EDIT.")
    attributes: list[ProfileAttribute] = Field(default_factory=list, description="Declared attributes (built-ins: username, email, firstName, lastName).")
    groups: list[ProfileGroup] = Field(default_factory=list, description="Attribute groups (built-in: user-metadata).")


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Unique attribute and group names; groups and client scopes named by attributes exist."""
    profile = spec.user_profile
    if profile is None:
        return
    at = ("user_profile",)
    yield from unique((((*at, "attributes", i, "name"), a.name) for i, a in enumerate(profile.attributes)), "attribute")
    yield from unique((((*at, "groups", i, "name"), g.name) for i, g in enumerate(profile.groups)), "attribute group")
    groups = {g.name for g in profile.groups} | {BUILTIN_GROUP}
    scopes = BUILTIN_SCOPES | {s.name for s in spec.client_scopes} | {n for m in spec.mcp_servers for n in m.scopes}
    how_scope = "define it under client_scopes, or use a Keycloak built-in scope"
    for i, attribute in enumerate(profile.attributes):
        path = (*at, "attributes", i)
        if attribute.group is not None and attribute.group not in groups:
            yield unknown((*path, "group"), "attribute group", attribute.group, groups, "define it under user_profile.groups")
        named = [("selector", attribute.selector.scopes if attribute.selector else [])]
        if isinstance(attribute.required, Required):
            named.append(("required", attribute.required.scopes or []))
        for key, names in named:
            for j, name in enumerate(names):
                if name not in scopes:
                    yield unknown((*path, key, "scopes", j), "client scope", name, scopes, how_scope)


def allows(profile: UserProfile | None, attribute: str) -> bool:
    """Whether a file's profile keeps a user attribute an admin writes (declared, or an admin-writable policy)."""
    if profile is None:
        return False
    return attribute in {a.name for a in profile.attributes} or profile.unmanaged_attribute_policy in ("ENABLED", "ADMIN_EDIT")
