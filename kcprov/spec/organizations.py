"""Organizations with their domains, members and identity providers (realms with organizations enabled).

The realm file's part of this kind (its resource kind is `kcprov.resources.organizations`).
Facts behind the checks (Keycloak 26.7.3): names and aliases are unique in a realm
(case-sensitive; 409 otherwise) and the alias, which defaults to the name, cannot
change; a domain belongs to one organization only (400); an identity provider is
linked to one organization only, and the domain it routes must be one of that
organization's; the Organizations API answers 404 until the realm enables them.
Members need not be users of the file: `users:` holds development users, and an
organization's members usually come from elsewhere (registration, brokering); apply
names a username the realm lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import Field

from kcprov.spec.fields import Flag, Label, MultiStrMap, Name, Spec, Username
from kcprov.spec.findings import Finding, unique, unknown

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec


class Domain(Spec):
    """An internet domain of the organization."""

    name: Name = Field(description="The domain, e.g. acme.com.")
    verified: Flag = Field(False, description="Whether the domain counts as verified (brokered users of it join the organization).")


class OrganizationIdp(Spec):
    """An identity provider linked to the organization."""

    alias: Name = Field(description="Alias of an identity provider of this file.")
    domain: Name | None = Field(None, description="The organization's domain whose users this provider logs in (one of its domains).")
    redirect_when_email_matches: Flag | None = Field(None, description="Send a user whose email is of `domain` straight to this provider.")


def _domain(value):
    return {"name": value} if isinstance(value, str) else value


def _idp(value):
    return {"alias": value} if isinstance(value, str) else value


class Organization(Spec):
    """An organization (Keycloak 26 Organizations); identified by its alias."""

    name: Label = Field(description="Display name, unique in the realm.")
    alias: Name | None = Field(None, description="Identity, unique in the realm, never changed once made. Default: the name.")
    description: str | None = Field(None, description="What the organization is.")
    enabled: Flag | None = Field(None, description="Whether its members can log in through it.")
    redirect_url: str | None = Field(None, description="Where members go after registering or accepting an invitation.")
    attributes: MultiStrMap | None = Field(None, description="Organization attributes; only the keys given are managed.")
    domains: list[Domain | str] | None = Field(None, description="Its domains (exactly these): names, or {name, verified}.")
    members: list[Username] | None = Field(None, description="Members an admin added (exactly these, by username); members made by brokering are Keycloak's.")
    identity_providers: list[OrganizationIdp | str] | None = Field(None, description="Linked identity providers (exactly these): aliases, or {alias, domain, redirect_when_email_matches}.")

    @property
    def key(self) -> str:
        return self.alias or self.name

    def domain_list(self) -> list[Domain]:
        return [Domain.model_validate(_domain(d)) for d in self.domains or []]

    def idp_list(self) -> list[OrganizationIdp]:
        return [OrganizationIdp.model_validate(_idp(p)) for p in self.identity_providers or []]


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Organizations enabled; names, aliases, domains and linked providers unique; providers of the file."""
    if not spec.organizations:
        return
    if not (spec.settings and spec.settings.organizations_enabled):
        yield Finding(("organizations",), "organizations need the realm's Organizations feature",
                      "add settings: {organizations_enabled: true} (Keycloak answers 404 to every organization request without it)")
    orgs = list(enumerate(spec.organizations))
    yield from unique(((("organizations", i, "name"), o.name) for i, o in orgs), "organization name")
    yield from unique(((("organizations", i, "alias" if o.alias else "name"), o.key) for i, o in orgs), "organization alias")
    domains = [(("organizations", i, "domains", j), d.name) for i, o in orgs for j, d in enumerate(o.domain_list())]
    yield from unique(domains, "domain", fold=str.lower)
    links = [(("organizations", i, "identity_providers", j), p.alias) for i, o in orgs for j, p in enumerate(o.idp_list())]
    yield from unique(links, "linked identity provider")
    providers = {p.alias for p in spec.identity_providers}
    for i, org in orgs:
        yield from unique(((("organizations", i, "members", j), m) for j, m in enumerate(org.members or [])), "member",
                          owner=f" of organization '{org.key}'")
        own = {d.name.lower() for d in org.domain_list()}
        for j, link in enumerate(org.idp_list()):
            path = ("organizations", i, "identity_providers", j)
            if link.alias not in providers:
                yield unknown((*path,), "identity provider", link.alias, providers, "define it under identity_providers")
            if link.domain is not None and link.domain.lower() not in own:
                yield Finding((*path, "domain"), f"domain '{link.domain}' is not a domain of organization '{org.key}'",
                              "add it to the organization's domains (Keycloak refuses a provider domain the organization lacks)")
