"""Resource kinds, in dependency order: each kind is described once, in its own module."""

from kcprov.resources.base import ApplyContext, Kind
from kcprov.resources.clients import ClientKind, ServiceAccountRolesKind
from kcprov.resources.events import EventsKind
from kcprov.resources.flows import AuthenticationFlowKind, FlowBindingsKind
from kcprov.resources.groups import DefaultGroupsKind, GroupKind
from kcprov.resources.identity_providers import IdentityProviderKind, IdentityProviderMapperKind
from kcprov.resources.organizations import OrganizationKind
from kcprov.resources.policies import ClientPolicyKind, ClientProfileKind
from kcprov.resources.realm import RealmKind
from kcprov.resources.registration import RegistrationPolicyKind
from kcprov.resources.required_actions import RequiredActionKind
from kcprov.resources.roles import ClientRoleKind, DefaultRolesKind, RoleKind
from kcprov.resources.scopes import ClientScopeKind, MapperKind, ScopeRolesKind
from kcprov.resources.smtp import SmtpKind
from kcprov.resources.user_profile import UserProfileAttributeKind, UserProfileGroupKind, UserProfileKind
from kcprov.resources.users import UserKind

KINDS: tuple[Kind, ...] = (
    RealmKind(),
    SmtpKind(),
    EventsKind(),
    UserProfileKind(),
    UserProfileGroupKind(),
    UserProfileAttributeKind(),
    RequiredActionKind(),
    AuthenticationFlowKind(),
    RoleKind(),
    ClientScopeKind(),
    MapperKind("client_scope"),
    FlowBindingsKind(),
    IdentityProviderKind(),
    ClientKind(),
    ClientRoleKind(),
    MapperKind("client"),
    RegistrationPolicyKind(),
    ClientProfileKind(),
    ClientPolicyKind(),
    ServiceAccountRolesKind(),
    DefaultRolesKind(),
    ScopeRolesKind(),
    GroupKind(),
    DefaultGroupsKind(),
    IdentityProviderMapperKind(),
    UserKind(),
    OrganizationKind(),
)
KINDS_BY_NAME = {k.name: k for k in KINDS}

__all__ = ["KINDS", "KINDS_BY_NAME", "ApplyContext", "Kind"]
