"""Resource kinds, in dependency order: each kind is described once, in its own module."""

from kcprov.resources.base import ApplyContext, Kind
from kcprov.resources.clients import ClientKind, ServiceAccountRolesKind
from kcprov.resources.policies import ClientPolicyKind, ClientProfileKind
from kcprov.resources.realm import RealmKind
from kcprov.resources.registration import RegistrationPolicyKind
from kcprov.resources.roles import ClientRoleKind, DefaultRolesKind, RoleKind
from kcprov.resources.scopes import ClientScopeKind, MapperKind, ScopeRolesKind
from kcprov.resources.users import UserKind

KINDS: tuple[Kind, ...] = (
    RealmKind(),
    RoleKind(),
    ClientScopeKind(),
    MapperKind("client_scope"),
    ClientKind(),
    ClientRoleKind(),
    MapperKind("client"),
    RegistrationPolicyKind(),
    ClientProfileKind(),
    ClientPolicyKind(),
    ServiceAccountRolesKind(),
    DefaultRolesKind(),
    ScopeRolesKind(),
    UserKind(),
)
KINDS_BY_NAME = {k.name: k for k in KINDS}

__all__ = ["KINDS", "KINDS_BY_NAME", "ApplyContext", "Kind"]
