"""The realm kcprov logs in to survives any realm file, unless the operator says otherwise.

kcprov runs with admin credentials, and in GitOps a pull request controls the
realm file. A file for the admin realm (`--auth-realm`, `master` by default)
could lock every later command out of Keycloak: disable the realm, demand TLS
the admin does not use, expire the admin's password through a policy, move the
token issuer, change or prune the clients and roles Keycloak administers itself
with (`admin-cli`, `security-admin-console`, `master-realm`, `realm-management`,
the `admin` role), add client policies that also bind those clients, make a
user-profile attribute required (the admin's password grant then fails with
"Account is not fully set up", checked on 26.7.3), or disable, demote or
delete the account kcprov logs in as.
`refuse_admin_realm_lockout` finds these in a plan and refuses it at plan time,
before anything is applied; `allow=True` (`--allow-admin-realm-changes`) lets
them through. The check reads the plan only: values are never quoted (a
changed secret must not reach the message).
"""

from __future__ import annotations

from collections.abc import Sequence

from kcprov.errors import KcprovError
from kcprov.plan.changes import Change, Plan
from kcprov.plan.diff import is_builtin
from kcprov.resources.base import Kind
from kcprov.resources.realm import camel

# RealmRepresentation fields (and the realm attributes Keycloak keeps them in) whose change can stop
# the admin from logging in or from using the token it gets
LOCKOUT_SETTINGS = {
    "enabled": "a disabled realm accepts no login",
    "sslRequired": "`all` refuses the admin's plain-http login",
    "passwordPolicy": "a policy can expire the admin's password, and the password grant then fails",
    "defaultSignatureAlgorithm": "an algorithm without a key leaves no way to sign the admin's tokens",
    "permanentLockout": "anyone can then lock the admin out for good with wrong passwords",
    "frontendUrl": "the token issuer moves away from the URL kcprov talks to",
}
# kinds whose entries can bind any client of the realm (a condition such as any-client)
POLICY_KINDS = {"client_profile", "client_policy"}


class AdminRealmChange(KcprovError):
    """A plan would change what the admin's own login depends on."""


def realm_field_name(field: str) -> str:
    """`settings.ssl_required` -> `sslRequired`, `attributes.frontendUrl` -> `frontendUrl`."""
    if field.startswith("settings."):
        return camel(field.removeprefix("settings."))
    return field.removeprefix("attributes.")


def lockout_reasons(change: Change, realm: str, login_user: str | None, login_client: str | None,
                    by_name: dict[str, Kind]) -> list[str]:
    """Why `change` (of the admin realm) could lock the admin out; empty when it cannot."""
    if change.kind == "realm":
        return [f"{d.field}: {LOCKOUT_SETTINGS[name]}" for d in change.diffs
                if (name := realm_field_name(d.field)) in LOCKOUT_SETTINGS]
    if is_builtin(by_name[change.kind], change.key, realm, by_name):
        return ["Keycloak administers itself with it"]
    if change.kind == "user_profile_attribute" and any(d.field == "required" and d.after not in (None, False)
                                                       for d in change.diffs):
        return ["a required attribute the admin lacks fails its password login (Account is not fully set up)"]
    if change.kind in POLICY_KINDS and change.action != "delete":
        return ["a client policy can apply to admin-cli and the admin console (e.g. refuse the password grant)"]
    if login_client is not None and (change.kind, change.key) in {("client", login_client),
                                                                 ("service_account_roles", login_client)}:
        return ["kcprov logs in with this client"]
    if change.kind == "user" and change.key == login_user:
        if change.action == "delete":
            return ["kcprov logs in as this user"]
        reasons = []
        for d in change.diffs:
            if d.field == "enabled" and d.after is False:
                reasons.append("enabled: kcprov logs in as this user")
            if d.field == "roles" and set(d.before or []) - set(d.after or []):
                reasons.append("roles: the user kcprov logs in as would lose roles")
        return reasons
    return []


def refuse_admin_realm_lockout(plan: Plan, auth_realm: str, login_user: str | None, login_client: str | None,
                               kinds: Sequence[Kind], allow: bool = False) -> None:
    """Raise AdminRealmChange when a plan of the admin realm could lock the admin out (unless `allow`)."""
    if allow or plan.realm.casefold() != auth_realm.casefold():
        return
    by_name = {k.name: k for k in kinds}
    found = [f"{change.action} {change.address} ({reason})"
             for change in plan.changes
             for reason in lockout_reasons(change, plan.realm, login_user, login_client, by_name)]
    if found:
        raise AdminRealmChange(
            f"realm '{plan.realm}' is the realm kcprov logs in to, and the plan would change what that login "
            f"depends on: {'; '.join(found)}. Nothing was applied.",
            hint="remove these from the realm file; if you really mean to change the admin realm, "
            "re-run with --allow-admin-realm-changes",
        )
