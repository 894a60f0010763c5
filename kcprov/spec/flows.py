"""Authentication flows with their executions, and which flow the realm and each client use.

The realm file's part of this kind (its resource kind is `kcprov.resources.flows`).
A flow is an ordered list of executions: an authenticator (a provider id such as
`auth-otp-form`) or a sub-flow (`flow: <alias>`) with executions of its own. The
order in the file is the order Keycloak runs them in. Keycloak's built-in flows
are not written here: it refuses to add executions to them, so the way to change
one is a copy under another alias, bound with `flow_bindings` (docs/authentication-flows.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from kcprov.spec.fields import Label, Name, Spec, StrMap, spec_error
from kcprov.spec.findings import Finding, unique, unknown
from kcprov.spec.known import BUILTIN_FLOWS, all_clients, flow_aliases
from kcprov.spec.yamldoc import Path

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec

Requirement = Literal["REQUIRED", "ALTERNATIVE", "DISABLED", "CONDITIONAL"]

BUILTIN_SUBFLOWS = frozenset(
    {
        "Account verification options", "Browser - Conditional 2FA", "Browser - Conditional Organization",
        "Direct Grant - Conditional OTP", "First Broker Login - Conditional Organization",
        "First broker login - Conditional 2FA", "Handle Existing Account", "Organization", "Reset - Conditional OTP",
        "User creation or linking", "Verify Existing Account by Re-authentication", "forms", "registration form",
    }
)
"""Sub-flows of the built-in flows (Keycloak 26.7): flow aliases are unique in a realm, sub-flows' too."""
BUILTIN_CONFIGS = frozenset(
    {"browser-conditional-credential", "create unique user config", "first-broker-login-conditional-credential",
     "review profile config"}
)
"""Authenticator configs of the built-in flows (Keycloak 26.7)."""
SECRET_CONFIG = {"registration-recaptcha-action": frozenset({"secret.key"}),
                 "registration-recaptcha-enterprise": frozenset({"api.key"})}
"""Authenticator config keys Keycloak 26.7 keeps secret (`secret: true` in /authentication/config-description/{id};
the export and GET answer `**********` for them): never shown, never read back."""
CLIENT_FLOW = "client-flow"
BUILTIN_TYPES = {"clients": CLIENT_FLOW}  # the other built-in flows are basic-flow
# flow_bindings key -> RealmRepresentation field
BINDINGS = {
    "browser": "browserFlow",
    "direct_grant": "directGrantFlow",
    "registration": "registrationFlow",
    "reset_credentials": "resetCredentialsFlow",
    "client_authentication": "clientAuthenticationFlow",
    "first_broker_login": "firstBrokerLoginFlow",
    "docker_authentication": "dockerAuthenticationFlow",
}
OVERRIDES = ("browser", "direct_grant")  # the keys of ClientRepresentation.authenticationFlowBindingOverrides


RESERVED = "?#&/[]\\+:;=@!$*,()"
"""Characters Keycloak 26.7 refuses in the alias of a top-level flow or an authenticator config ("Character '?' not
allowed."; sub-flows take them)."""


def _reserved(alias: str, what: str, at: str):
    """The error for an alias holding a character Keycloak refuses, or None."""
    char = next((c for c in alias if c in RESERVED), None)
    if char is None:
        return None
    return spec_error(f"{what} '{alias}' contains {char!r}, which Keycloak refuses in it",
                      hint=f"use letters, digits, spaces, - _ . (Keycloak refuses {' '.join(RESERVED)})", at=at)


class Execution(Spec):
    """One step of a flow: an authenticator, or a sub-flow with executions of its own."""

    authenticator: Name | None = Field(None, description="Authenticator provider id, e.g. auth-cookie, auth-otp-form, identity-provider-redirector.")
    flow: Label | None = Field(None, min_length=1, description="Alias of a sub-flow (unique in the realm, like every flow alias); its steps go under `executions`.")
    type: Literal["basic-flow", "form-flow"] | None = Field(None, description="Sub-flow type: basic-flow (default) or form-flow (the registration form). Changing it replaces the sub-flow.")
    description: str | None = Field(None, description="Sub-flow description.")
    requirement: Requirement = Field(description="REQUIRED, ALTERNATIVE, DISABLED, or CONDITIONAL (sub-flows only: run when their condition authenticators pass).")
    config: StrMap | None = Field(None, description="Authenticator config: `alias` (unique in the realm) plus the authenticator's settings, e.g. {alias: to-sso, defaultProvider: company-sso}. Only the keys given are managed.")
    executions: list[Execution] = Field(default_factory=list, description="Steps of the sub-flow, in order.")

    @model_validator(mode="after")
    def _one_kind(self) -> Execution:
        if (self.authenticator is None) == (self.flow is None):
            raise spec_error("an execution needs exactly one of authenticator and flow",
                             hint="write `authenticator: <provider id>`, or `flow: <alias>` for a sub-flow")
        if self.authenticator is not None:
            for key in ("type", "description", "executions"):
                if getattr(self, key):
                    raise spec_error(f"{key} belongs to a sub-flow, not to authenticator '{self.authenticator}'",
                                     hint="remove it, or write `flow: <alias>` instead of authenticator", at=key)
            if self.requirement == "CONDITIONAL":
                raise spec_error(f"authenticator '{self.authenticator}' cannot be CONDITIONAL",
                                 hint="CONDITIONAL is for sub-flows; a condition authenticator inside one is REQUIRED",
                                 at="requirement")
            if self.config is not None and not self.config.get("alias"):
                raise spec_error(f"the config of authenticator '{self.authenticator}' has no alias",
                                 hint="add `alias: <name>` to it (Keycloak names every authenticator config)", at="config")
            if self.config is not None and (error := _reserved(self.config["alias"], "config alias", "config")):
                raise error
        elif self.config is not None:
            raise spec_error(f"sub-flow '{self.flow}' cannot have a config", hint="configs belong to authenticators",
                             at="config")
        return self

    @property
    def name(self) -> str:
        """How the flat shape and the plan name the step: its provider id, or `flow:<alias>`."""
        return self.authenticator if self.authenticator is not None else f"flow:{self.flow}"


class AuthenticationFlow(Spec):
    """A top-level authentication flow; bind it with `flow_bindings` or a client's `authentication_flow_overrides`."""

    alias: Label = Field(min_length=1, description="Flow alias, unique in the realm (sub-flow aliases included). Not one of Keycloak's built-in flows.")
    description: str | None = Field(None, description="What the flow is for.")
    type: Literal["basic-flow", "client-flow"] = Field("basic-flow", description="basic-flow (users: browser, direct grant, registration, ...) or client-flow (client authentication).")
    executions: list[Execution] = Field(default_factory=list, description="Steps of the flow, in the order Keycloak runs them.")

    @model_validator(mode="after")
    def _keycloak_takes_alias(self) -> AuthenticationFlow:
        if error := _reserved(self.alias, "flow alias", "alias"):
            raise error
        return self


class FlowBindings(Spec):
    """The flows the realm uses; a binding left out keeps its flow (built-in or bound by hand)."""

    browser: Label | None = Field(None, min_length=1, description="Browser login flow (realm browserFlow; Keycloak's: browser).")
    direct_grant: Label | None = Field(None, min_length=1, description="Direct grant (password grant) flow (Keycloak's: direct grant).")
    registration: Label | None = Field(None, min_length=1, description="Self-registration flow (Keycloak's: registration).")
    reset_credentials: Label | None = Field(None, min_length=1, description="Reset credentials flow (Keycloak's: reset credentials).")
    client_authentication: Label | None = Field(None, min_length=1, description="Client authentication flow, a client-flow (Keycloak's: clients).")
    first_broker_login: Label | None = Field(None, min_length=1, description="Flow after a first login through an identity provider (Keycloak's: first broker login).")
    docker_authentication: Label | None = Field(None, min_length=1, description="Docker authentication flow (Keycloak's: docker auth).")


class FlowOverrides(Spec):
    """Flows one client uses instead of the realm's; '' = the realm's flow (removes an override)."""

    browser: Label | None = Field(None, description="Browser flow alias for this client ('' = the realm's).")
    direct_grant: Label | None = Field(None, description="Direct grant flow alias for this client ('' = the realm's).")


def steps(executions: list[Execution], path: Path) -> Iterator[tuple[Path, Execution]]:
    """Every execution at any depth, with its path in the file."""
    for i, step in enumerate(executions):
        yield (*path, i), step
        yield from steps(step.executions, (*path, i, "executions"))


def flow_types(spec: RealmSpec) -> dict[str, str]:
    """Top-level flow alias -> type, for the file's flows and the built-in ones."""
    found = {alias: BUILTIN_TYPES.get(alias, "basic-flow") for alias in BUILTIN_FLOWS}
    found.update({f.alias: f.type for f in spec.authentication_flows})
    return found


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Cross-object problems of this part of the file (unique names, references)."""
    flows = [(("authentication_flows", i), f) for i, f in enumerate(spec.authentication_flows)]
    aliases: list[tuple[Path, str]] = []
    configs: list[tuple[Path, str]] = []
    for path, flow in flows:
        aliases.append(((*path, "alias"), flow.alias))
        for step_path, step in steps(flow.executions, (*path, "executions")):
            if step.flow is not None:
                aliases.append(((*step_path, "flow"), step.flow))
            if step.config is not None:
                configs.append(((*step_path, "config", "alias"), step.config["alias"]))
        if flow.alias in BUILTIN_FLOWS:
            yield Finding((*path, "alias"), f"flow '{flow.alias}' is one of Keycloak's built-in flows",
                          "kcprov does not change built-in flows: give your copy another alias and bind it with "
                          f"flow_bindings (e.g. alias: my-{flow.alias.replace(' ', '-')})")
    yield from unique(aliases, "flow alias")
    for path, alias in aliases:
        if alias in BUILTIN_SUBFLOWS:
            yield Finding(path, f"flow alias '{alias}' is taken by a sub-flow of Keycloak's built-in flows",
                          "flow aliases are unique in a realm; choose another one")
    yield from unique(configs, "authenticator config alias")
    for path, alias in configs:
        if alias in BUILTIN_CONFIGS:
            yield Finding(path, f"authenticator config alias '{alias}' is taken by Keycloak's built-in flows",
                          "config aliases are unique in a realm; choose another one")
    yield from _references(spec)


def _references(spec: RealmSpec) -> Iterator[Finding]:
    known, types = flow_aliases(spec), flow_types(spec)
    how = "define it under authentication_flows"
    bound: list[tuple[Path, str, str]] = []  # (path, binding, flow alias)
    if spec.flow_bindings is not None:
        bound += [(("flow_bindings", key), key, getattr(spec.flow_bindings, key)) for key in BINDINGS]
    for path, client in all_clients(spec):
        overrides = client.authentication_flow_overrides
        if overrides is not None:
            bound += [((*path, "authentication_flow_overrides", key), key, getattr(overrides, key)) for key in OVERRIDES]
    for path, binding, alias in bound:
        if not alias:  # not managed, or '' (the realm's flow)
            continue
        if alias not in known:
            yield unknown(path, "flow", alias, known, how)
            continue
        wanted = CLIENT_FLOW if binding == "client_authentication" else "basic-flow"
        if types[alias] != wanted:
            yield Finding(path, f"{binding.replace('_', ' ')} needs a {wanted}, but flow '{alias}' is a {types[alias]}",
                          f"bind a {wanted} here (type: {wanted})")
