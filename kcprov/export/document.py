"""The realm file being exported, as each resource kind's `export` fills it in.

Lists of named entries (clients, client_scopes, mappers, ...) are held as
{identity: entry} while the kinds write, so a child (a mapper, a client role)
finds its parent's entry in constant time, or creates a stub naming it when
the parent is a built-in object left out because it is unchanged; the emitter
turns them into lists sorted by identity. Secrets never enter the document:
`secret_ref` writes a `{{ env.NAME }}` reference and records which object's
secret the name stands for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kcprov.resources.base import Attrs
from kcprov.state import LiveState


class EnvReference(str):
    """A `{{ env.NAME }}` the emitter writes as is (every other `{{` in a value is escaped for Jinja)."""


def env_name(*parts: str) -> str:
    """KC_<PARTS>_SECRET: uppercased, every run of characters other than ASCII letters and digits -> `_`."""
    words = [re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_").upper() for p in ("KC", *parts, "SECRET")]
    return "_".join(w for w in words if w)


@dataclass
class ExportContext:
    """What a kind's `export` gets: the live realm, the document so far, and where to report what cannot be written."""

    realm: str
    live: LiveState
    everything: bool = False  # --all: every field and every built-in object
    baseline: dict[str, dict[str, Attrs]] = field(default_factory=dict)  # kind -> key -> attrs of a new realm
    base_export: dict = field(default_factory=dict)  # the new realm's partial export (its templates included)
    doc: dict[str, Any] = field(default_factory=dict)
    comments: dict[tuple[str, ...], str] = field(default_factory=dict)  # path of a key -> end-of-line comment
    skipped: set[str] = field(default_factory=set)  # "kind 'name'" lines of what the file cannot hold
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # env name -> (kind, key)
    excluded: set[tuple[str, str]] = field(default_factory=set)  # (kind, key) not written at all: children follow
    changed: set[str] = field(default_factory=set)  # fields of the object being exported that differ from the baseline
    _raw: dict[str, dict[str, dict]] = field(default_factory=dict)

    def raw(self, section: str, id_field: str, key: str) -> dict:
        """The raw representation of one object in the partial export (e.g. "clients", "clientId")."""
        return self._indexed("live", self.live.raw.export, section, id_field).get(key, {})

    def base_raw(self, section: str, id_field: str, key: str) -> dict:
        """The same in the new realm of the baseline."""
        return self._indexed("base", self.base_export, section, id_field).get(key, {})

    def _indexed(self, side: str, export: dict, section: str, id_field: str) -> dict[str, dict]:
        index = self._raw.get(f"{side}:{section}")
        if index is None:
            index = self._raw[f"{side}:{section}"] = {e.get(id_field): e for e in export.get(section) or []}
        return index

    def exclude(self, kind: str, key: str, label: str, why: str) -> None:
        """Leave the whole object (and its children) out, saying why."""
        self.excluded.add((kind, key))
        self.not_exported(label, key, why)

    def entry(self, container: dict, section: str, id_field: str, name: str) -> dict:
        """The entry named `name` in the list `section` of `container` (a stub `{id_field: name}` if new)."""
        entries = container.setdefault(section, {})
        return entries.setdefault(name, {id_field: name})

    def section(self, *path: str) -> dict:
        """The mapping at `path` in the document (settings, client_registration.anonymous, ...), created if new."""
        node = self.doc
        for key in path:
            node = node.setdefault(key, {})
        return node

    def base(self, kind: str, key: str) -> Attrs | None:
        """The object as a new realm has it (None: a new realm has no such object)."""
        return self.baseline.get(kind, {}).get(key)

    def not_exported(self, kind: str, name: str, what: str | None = None) -> None:
        self.skipped.add(f"{kind} '{name}'" + (f": {what}" if what else ""))

    def cannot_write(self, kind: str, name: str, field: str, what: str | None = None) -> None:
        """A field of the object being exported that the file format has no key for: listed if it differs
        from the baseline (with --all, equal ones come along in `fields` and are not news)."""
        if field in self.changed:
            self.not_exported(kind, name, what)

    def secret_ref(self, kind: str, key: str) -> EnvReference:
        """`{{ env.KC_<REALM>_<KIND>_<KEY>_SECRET }}` for the secret of one object; collisions get _2, _3, ..."""
        base = env_name(self.realm, kind, key)
        name, n = base, 1
        while name in self.secrets and self.secrets[name] != (kind, key):
            n += 1
            name = f"{base}_{n}"
        self.secrets[name] = (kind, key)
        return EnvReference(f"{{{{ env.{name} }}}}")
