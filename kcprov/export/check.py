"""The exported document checked by the realm file's own models before it is written.

Keycloak accepts names kcprov's format refuses (a client id with a space, a
display name with an invisible character): an export must still be a file
`kcprov validate` accepts. An entry the models refuse is left out (the
innermost named entry holding the problem, e.g. one mapper, not its client)
and listed as not exported with the reason, like anything else kcprov cannot
write.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from kcprov.export.document import ExportContext
from kcprov.spec.models import RealmSpec


# list sections of the document -> how a not-exported line names one entry
SECTION_KINDS = {"clients": "client", "client_scopes": "client scope", "roles": "role", "mappers": "mapper",
                 "users": "user", "required_actions": "required action", "groups": "group", "subgroups": "group", "profiles": "client profile", "policies": "client policy",
                 "identity_providers": "identity provider", "authentication_flows": "authentication flow"}


def drop_invalid(ctx: ExportContext, limit: int = 1000) -> None:
    for _ in range(limit):
        try:
            RealmSpec.model_validate(as_loaded(ctx.doc))
            return
        except ValidationError as exc:
            error = exc.errors()[0]
            container, key, where, parent = _innermost(ctx.doc, error["loc"])
            del container[key]
            if not container and parent is not None:  # an empty section would read as a mapping, not a list
                del parent[0][parent[1]]
            ctx.not_exported(where, str(key), f"refused by the realm file format: {error['msg']}")
    raise AssertionError("export check did not converge")  # each round removes one entry: unreachable


def as_loaded(node: Any, section: str | None = None) -> Any:
    """Sections held as {identity: entry} become lists in identity order, as the emitter writes them."""
    if isinstance(node, dict) and section in SECTION_KINDS:
        return [as_loaded(node[k]) for k in sorted(node)]
    if isinstance(node, dict):
        return {k: as_loaded(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [as_loaded(v) for v in node]
    return node


def _innermost(doc: dict, loc: tuple) -> tuple[dict, Any, str, tuple[dict, str] | None]:
    """(container, key, section name, (container's parent, its key)) of the innermost named entry or
    top-level key the error is in."""
    found: tuple[dict, Any, str, tuple[dict, str] | None] = (doc, loc[0], "realm file key", None)
    node: Any = doc
    section, holder = str(loc[0]), None
    for part in loc:
        if isinstance(node, dict) and isinstance(part, int) and all(isinstance(v, dict) for v in node.values()):
            key = sorted(node)[part]
            found = (node, key, SECTION_KINDS.get(section, section), holder)
            node = node[key]
        elif isinstance(node, dict) and part in node:
            section, holder, node = str(part), (node, part), node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return found
