"""Role scope mappings of client scopes (`scope_roles`): the file's shape and the export's, compared flat."""

from __future__ import annotations

from kcprov.resources import KINDS_BY_NAME
from kcprov.spec.models import RealmSpec
from kcprov.state import RawRealm

KIND = KINDS_BY_NAME["scope_roles"]


def test_desired_splits_realm_and_client_roles_and_leaves_unwritten_scopes_unmanaged():
    spec = RealmSpec.model_validate({
        "realm": "r",
        "client_scopes": [
            {"name": "mcp:admin", "scope_roles": {"realm": ["mcp-admin"], "api": ["audit"]}},
            {"name": "mcp:tools"},
            {"name": "cleared", "scope_roles": {}},
        ],
    })
    assert KIND.desired(spec) == {"mcp:admin": {"roles": ["api/audit", "realm/mcp-admin"]}, "cleared": {"roles": []}}


def test_live_reads_scope_mappings_of_scopes_not_of_clients():
    export = {
        "clientScopes": [{"name": "mcp:admin"}, {"name": "mcp:tools"}],
        "scopeMappings": [
            {"clientScope": "mcp:admin", "roles": ["mcp-admin", "default-roles-r"]},
            {"client": "app", "roles": ["mcp-user"]},  # a client's own scope mapping
        ],
        "clientScopeMappings": {
            "api": [{"clientScope": "mcp:admin", "roles": ["audit"]}, {"client": "app", "roles": ["read"]}],
        },
    }
    assert KIND.live(RawRealm(name="r", export=export)) == {
        "mcp:admin": {"roles": ["api/audit", "realm/default-roles-r", "realm/mcp-admin"]},
        "mcp:tools": {"roles": []},
    }
