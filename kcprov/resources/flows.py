"""Authentication flows and their executions, and the realm's flow bindings.

A top-level flow is one object (key: its alias) whose sub-flows and executions
are flat fields addressed by step path: a step is named by its authenticator
(`auth-otp-form`, `auth-otp-form#2` for a second one in the same flow) or
`flow:<alias>` for a sub-flow, and a sub-flow's steps by the path below it:

    executions = [auth-cookie, flow:my forms]
    auth-cookie.requirement = ALTERNATIVE
    flow:my forms.type = basic-flow
    flow:my forms.executions = [auth-username-password-form, auth-otp-form]
    flow:my forms/auth-otp-form.requirement = REQUIRED
    flow:my forms/auth-otp-form.config = otp-config        (the config's alias)
    flow:my forms/auth-otp-form.config.<key> = value

So changing one requirement is one update of the flow, and an apply converges the
flow in place: it never deletes and re-creates a flow to change it (the flow's
id, which clients' overrides name, stays). Keycloak 26.7's Admin API, as used:
- requirement and order: PUT /authentication/flows/{parent alias}/executions with the
  execution's info (it takes `priority`, the sort key, since Keycloak 25); only
  executions whose requirement or place changes are written, and priorities already
  in the right order are kept (`priorities`);
- new steps: POST .../executions/execution {provider, priority} and .../executions/flow
  {alias, type, description, provider, priority} (both ignore a requirement: new
  executions start DISABLED, so a PUT follows);
- removed steps: DELETE /authentication/executions/{id} (a sub-flow goes with its execution);
- authenticator config: POST /authentication/executions/{id}/config, PUT /authentication/config/{id}
  (which renames it too); only the config keys the file writes are managed;
- a sub-flow's description: PUT /authentication/flows/{id}. A sub-flow's type cannot
  change in place (a form-flow's execution carries its form authenticator): that
  sub-flow alone is replaced.
The live side comes from the partial export (flows by alias, executions by priority,
configs by alias); an apply reads the execution ids with one GET per changed flow.

Keycloak's built-in flows are not managed (it refuses to add executions to them, and
a file describing only part of one would hide the rest): never deleted or listed,
and an export lists a changed one instead of writing it. Bindings (realm fields
browserFlow, ...) are kind `flow_bindings`; a client's overrides are a client field
(`kcprov.resources.clients`), whose aliases map to flow ids with `flow_id`.
"""

from __future__ import annotations

from collections.abc import Iterable

from kcprov.errors import KcprovError
from kcprov.keycloak import seg
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none, prefixed
from kcprov.secret import Secret
from kcprov.spec.flows import BINDINGS, SECRET_CONFIG, Execution
from kcprov.spec.known import BUILTIN_FLOWS

FLOW = "flow:"  # how a sub-flow's step is named (authenticators by their provider id)
FORM_PROVIDER = "registration-page-form"  # the form authenticator of a form-flow (Keycloak's only one)


def field(path: str, name: str) -> str:
    """The flat field `name` of the step at `path` ("" = the top-level flow itself)."""
    return f"{path}.{name}" if path else name


def child(path: str, step: str) -> str:
    return f"{path}/{step}" if path else step


def secret_key(field_name: str) -> bool:
    """Whether a flat field is a config value Keycloak keeps secret (`<step>.config.secret.key` of reCAPTCHA)."""
    step, sep, key = field_name.rsplit("/", 1)[-1].partition(".config.")
    return bool(sep) and key in SECRET_CONFIG.get(provider(step), ())


class SecretConfigFields:
    """The kind's `write_only`: secret config values are written with their config, never compared
    (Keycloak answers `**********` for them)."""

    def __contains__(self, field_name: object) -> bool:
        return isinstance(field_name, str) and secret_key(field_name)


def step_names(names: Iterable[str]) -> list[str]:
    """Step names in one flow, a repeated authenticator numbered from its second use (`x#2`)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def provider(step: str) -> str:
    return step.split("#", 1)[0]


def is_flow(step: str) -> bool:
    return step.startswith(FLOW)


def priorities(order: list[str], live: dict[str, int]) -> dict[str, int]:
    """Priorities that put the steps in `order`, keeping as many of the `live` ones as already sort right.

    Keycloak runs a flow's executions by priority. The live priorities of the longest run
    already in order are kept; the others go into the gaps between them (new steps after
    the last one at steps of 10); only where a gap is too narrow is every step renumbered.
    """
    known = [s for s in order if s in live]
    best: list[list[str]] = []  # best[i]: the longest increasing run ending at known[i]
    for i, step in enumerate(known):
        runs = [best[j] for j in range(i) if live[known[j]] < live[step]]
        best.append([*max(runs, key=len, default=[]), step])
    kept = set(max(best, key=len, default=[]))
    out: dict[str, int] = {}
    low, pending = 0, []
    for step in [*order, None]:
        if step is not None and step not in kept:
            pending.append(step)
            continue
        high = live[step] if step is not None else None
        if high is None:
            out.update({s: low + 10 * (j + 1) for j, s in enumerate(pending)})
        elif pending:
            gap = (high - low) // (len(pending) + 1)
            if gap < 1:
                return {s: 10 * (j + 1) for j, s in enumerate(order)}
            out.update({s: low + gap * (j + 1) for j, s in enumerate(pending)})
        if step is not None:
            out[step], low, pending = high, high, []
    return out


def steps_attrs(executions: list[Execution], path: str) -> Attrs:
    """The file's executions of one flow as flat fields."""
    names = step_names(e.name for e in executions)
    attrs: Attrs = {field(path, "executions"): names}
    for name, step in zip(names, executions):
        at = child(path, name)
        attrs[f"{at}.requirement"] = step.requirement
        if step.flow is not None:
            attrs[f"{at}.type"] = step.type or "basic-flow"
            attrs.update(drop_none({f"{at}.description": step.description}))
            attrs.update(steps_attrs(step.executions, at))
        elif step.config is not None:
            values = dict(step.config)
            attrs[f"{at}.config"] = values.pop("alias")
            attrs.update({f: Secret(v) if secret_key(f) else v for f, v in prefixed(f"{at}.config", values).items()})
    return attrs


def live_steps(flow: dict, path: str, flows: dict[str, dict], configs: dict[str, dict], seen: set[str]) -> Attrs:
    """One flow of the partial export (executions by priority, sub-flows by alias) as flat fields."""
    seen.add(flow["alias"])
    executions = sorted(flow.get("authenticationExecutions") or [], key=lambda e: e.get("priority", 0))
    names = step_names(FLOW + e["flowAlias"] if e.get("authenticatorFlow") else e.get("authenticator") or ""
                       for e in executions)
    attrs: Attrs = {field(path, "executions"): names}
    for name, rep in zip(names, executions):
        at = child(path, name)
        attrs[f"{at}.requirement"] = rep.get("requirement")
        sub = flows.get(rep.get("flowAlias") or "")
        if rep.get("authenticatorFlow") and sub is not None and sub["alias"] not in seen:
            attrs[f"{at}.type"] = sub.get("providerId")
            attrs[f"{at}.description"] = sub.get("description")
            attrs.update(live_steps(sub, at, flows, configs, seen))
        elif rep.get("authenticatorConfig") in configs:
            config = configs[rep["authenticatorConfig"]]
            attrs[f"{at}.config"] = config["alias"]
            attrs.update(prefixed(f"{at}.config", config.get("config")))
    return attrs


def file_steps(attrs: Attrs, path: str, secrets: list[str]) -> list[dict]:
    """Flat fields -> the file's `executions` (the inverse of steps_attrs); secret config values are left
    out (Keycloak never returns them) and their fields added to `secrets`."""
    out = []
    for name in attrs.get(field(path, "executions")) or []:
        at = child(path, name)
        if is_flow(name):
            step: dict = {"flow": name.removeprefix(FLOW), "requirement": attrs.get(f"{at}.requirement")}
            if attrs.get(f"{at}.type") not in (None, "basic-flow"):
                step["type"] = attrs[f"{at}.type"]
            if attrs.get(f"{at}.description"):
                step["description"] = attrs[f"{at}.description"]
            step["executions"] = file_steps(attrs, at, secrets)
        else:
            step = {"authenticator": provider(name), "requirement": attrs.get(f"{at}.requirement")}
            if attrs.get(f"{at}.config") is not None:
                prefix = f"{at}.config."
                values = {f: v for f, v in attrs.items() if f.startswith(prefix)}
                secrets += [f for f in values if secret_key(f)]
                step["config"] = {"alias": attrs[f"{at}.config"],
                                  **{f.removeprefix(prefix): v for f, v in values.items() if not secret_key(f)}}
        out.append(step)
    return out


def execution_tree(infos: list[dict], top: str) -> dict[str, list[dict]]:
    """GET .../executions (every level, depth first) -> flow alias -> its executions in order."""
    tree: dict[str, list[dict]] = {top: []}
    stack = [top]  # stack[level]: the flow holding the executions of that level
    for info in infos:
        level = info.get("level", 0)
        tree.setdefault(stack[level], []).append(info)
        del stack[level + 1:]
        if info.get("authenticationFlow"):
            stack.append(info["displayName"])
            tree.setdefault(info["displayName"], [])
    return tree


def info_name(info: dict) -> str:
    return FLOW + info["displayName"] if info.get("authenticationFlow") else info.get("providerId") or ""


def bound_by(ctx: ApplyContext, alias: str) -> list[str]:
    """What keeps using the flow after this apply: realm bindings and client overrides naming it that the
    file does not move (a client the file leaves out is taken as going too)."""
    export = ctx.live.raw.export or {}
    rebound = ctx.desired.get(FlowBindingsKind.name, {}).get(ctx.realm, {})
    users = [f"the realm's {key.replace('_', ' ')} flow" for key, rep in BINDINGS.items()
             if export.get(rep) == alias and rebound.get(key, alias) == alias]
    uuid = next((f["id"] for f in export.get("authenticationFlows") or [] if f["alias"] == alias), None)
    clients = ctx.desired.get("client", {})
    for c in export.get("clients") or []:
        for key, bound in (c.get("authenticationFlowBindingOverrides") or {}).items():
            wanted = clients.get(c["clientId"], {}).get(f"authentication_flow_overrides.{key}", alias)
            if bound == uuid and c["clientId"] in clients and wanted == alias:
                users.append(f"the {key.replace('_', ' ')} flow of client '{c['clientId']}'")
    return users


def flow_id(ctx: ApplyContext, alias: str) -> str:
    """The server id of a top-level flow (made earlier in this apply, in the export, or looked up)."""
    return ctx.server_id(
        AuthenticationFlowKind.name, alias, "authenticationFlows", "alias",
        lambda: ctx.client.get(f"{ctx.base}/authentication/flows", f"authentication flow '{alias}'"),
        "define it under authentication_flows, or run `kcprov plan` again to see the current state",
    )


class AuthenticationFlowKind(Kind):
    name = "authentication_flow"
    label = "authentication flow"
    stage = 1
    reads = frozenset({"authenticationFlows", "authenticatorConfig"})
    write_only = SecretConfigFields()  # type: ignore[assignment]

    def desired(self, spec) -> dict[str, Attrs]:
        return {
            f.alias: {**drop_none({"description": f.description}), "type": f.type, **steps_attrs(f.executions, "")}
            for f in spec.authentication_flows
        }

    def live(self, raw) -> dict[str, Attrs]:
        flows = {f["alias"]: f for f in raw.export.get("authenticationFlows") or []}
        configs = {c["alias"]: c for c in raw.export.get("authenticatorConfig") or []}
        return {
            alias: {"description": f.get("description"), "type": f.get("providerId"),
                    **live_steps(f, "", flows, configs, set())}
            for alias, f in flows.items() if f.get("topLevel")
        }

    def is_builtin(self, key: str, realm: str) -> bool:
        return key in BUILTIN_FLOWS

    def create(self, ctx: ApplyContext, change) -> None:
        attrs = ctx.desired[self.name][change.key]
        body = {"alias": change.key, "providerId": attrs["type"], "topLevel": True, "builtIn": False,
                **drop_none({"description": attrs.get("description")})}
        ctx.remember(self.name, change.key, ctx.client.post(f"{ctx.base}/authentication/flows", body, self._what(change.key)))
        if attrs.get("executions"):
            Converge(ctx, change.key, attrs).run(new=True)

    def update(self, ctx: ApplyContext, change) -> None:
        attrs = ctx.desired[self.name][change.key]
        changed = {d.field for d in change.diffs}
        if changed & {"description", "type"}:
            uuid = flow_id(ctx, change.key)
            body = {"id": uuid, "alias": change.key, "providerId": attrs["type"], "topLevel": True, "builtIn": False,
                    "description": attrs.get("description", ctx.live.objects[self.name][change.key].get("description"))}
            ctx.client.put(f"{ctx.base}/authentication/flows/{uuid}", body, self._what(change.key))
        if changed - {"description", "type"}:
            Converge(ctx, change.key, attrs).run()

    def delete(self, ctx: ApplyContext, change) -> None:
        """Sub-flows and configs go with the flow. A flow the file rebinds is unbound first (bindings and
        clients are updated before any delete); one that stays bound is refused here with a hint, as
        Keycloak answers a bare 500 to deleting it."""
        users = bound_by(ctx, change.key)
        if users:
            raise KcprovError(f"{self._what(change.key)} is still {users[0]}; Keycloak cannot delete a flow in use.",
                              hint="bind another flow there in the realm file (e.g. flow_bindings: {browser: browser}, "
                                   "or a client's authentication_flow_overrides: {browser: ''}), then apply again")
        ctx.client.delete(f"{ctx.base}/authentication/flows/{flow_id(ctx, change.key)}", self._what(change.key))

    def export(self, key, fields, ctx) -> None:
        """The realm's own flows, whole. A built-in one (of this Keycloak, or of an older one a realm was
        imported from) is listed when it differs from a new realm's, never written: the file cannot hold it."""
        if self.is_builtin(key, ctx.realm) or ctx.raw("authenticationFlows", "alias", key).get("builtIn"):
            if ctx.changed:  # an export with --all hands over unchanged built-ins too
                ctx.not_exported(self.label, key, "a built-in flow, changed here; kcprov does not change built-in "
                                                  "flows (copy it under another alias and bind the copy)")
            return
        attrs = ctx.live.objects[self.name][key]
        entry = ctx.entry(ctx.doc, "authentication_flows", "alias", key)
        if attrs.get("description"):
            entry["description"] = attrs["description"]
        if attrs.get("type") != "basic-flow":
            entry["type"] = attrs["type"]
        secrets: list[str] = []
        entry["executions"] = file_steps(attrs, "", secrets)
        for f in secrets:
            ctx.not_exported(self.label, key, f"{f}: Keycloak does not return secret config values; write it as "
                                              "{{ env.NAME }} in the config")

    @staticmethod
    def _what(alias: str) -> str:
        return f"authentication flow '{alias}'"


class Converge:
    """The Admin API calls that turn one live flow into the file's, in place (see the module docstring).

    Two passes over the execution tree read with GET .../executions: the structure (removed
    steps deleted, new ones created at their priority), then, after reading the tree again
    if anything was created, each step's requirement, priority, config and description.
    """

    def __init__(self, ctx: ApplyContext, alias: str, attrs: Attrs):
        self.ctx, self.alias, self.attrs = ctx, alias, attrs
        export = ctx.live.raw.export or {}
        self.flows = {f["alias"]: f for f in export.get("authenticationFlows") or []}
        self.configs = {c["id"]: c for c in export.get("authenticatorConfig") or []}
        self.what = f"authentication flow '{alias}'"
        self.order: dict[str, dict[str, int]] = {}  # path -> step -> priority
        self.made: set[str] = set()  # sub-flows created by this run

    def run(self, new: bool = False) -> None:
        """`new`: the flow was just created (no execution to read yet)."""
        tree = {self.alias: []} if new else self._tree()
        self._settle(self.alias, "", self._tree() if self._structure(self.alias, "", tree) else tree)

    def _tree(self) -> dict[str, list[dict]]:
        infos = self.ctx.client.get(f"{self._flows}/{seg(self.alias)}/executions", self.what) or []
        return execution_tree(infos, self.alias)

    @property
    def _flows(self) -> str:
        return f"{self.ctx.base}/authentication/flows"

    def _steps(self, flow: str, tree: dict[str, list[dict]]) -> dict[str, dict]:
        live = tree.get(flow, [])
        return dict(zip(step_names(info_name(i) for i in live), live))

    def _structure(self, flow: str, path: str, tree: dict[str, list[dict]]) -> bool:
        """Delete the steps the file drops (and sub-flows whose type changes), create the new ones; True if any."""
        have = self._steps(flow, tree)
        want = self.attrs.get(field(path, "executions")) or []
        for step, info in list(have.items()):
            at = child(path, step)
            replaced = is_flow(step) and self.attrs.get(f"{at}.type") not in (
                None, (self.flows.get(step.removeprefix(FLOW)) or {}).get("providerId"))
            if step not in want or replaced:
                self.ctx.client.delete(f"{self.ctx.base}/authentication/executions/{info['id']}", self.what)
                del have[step]
        self.order[path] = priorities(want, {s: i.get("priority", 0) for s, i in have.items()})
        created = False
        for step in want:
            at = child(path, step)
            if step not in have:
                self._create(flow, path, step)
                created = True
            if is_flow(step):
                created = self._structure(step.removeprefix(FLOW), at, tree if step in have else {}) or created
        return created

    def _create(self, flow: str, path: str, step: str) -> None:
        at, priority = child(path, step), self.order[path][step]
        if is_flow(step):
            kind = self.attrs.get(f"{at}.type") or "basic-flow"
            body = {"alias": step.removeprefix(FLOW), "type": kind, "priority": priority,
                    "description": self.attrs.get(f"{at}.description") or "",
                    **({"provider": FORM_PROVIDER} if kind == "form-flow" else {})}
            self.ctx.client.post(f"{self._flows}/{seg(flow)}/executions/flow", body, self.what)
            self.made.add(step.removeprefix(FLOW))
        else:
            self.ctx.client.post(f"{self._flows}/{seg(flow)}/executions/execution",  # no key to look it up by
                                 {"provider": provider(step), "priority": priority}, self.what, once=True)

    def _settle(self, flow: str, path: str, tree: dict[str, list[dict]]) -> None:
        """Each step's requirement and priority (one PUT where either differs), config, sub-flow description."""
        have = self._steps(flow, tree)
        for step in self.attrs.get(field(path, "executions")) or []:
            info, at = have[step], child(path, step)
            body = dict(info)
            requirement = self.attrs.get(f"{at}.requirement")
            if requirement is not None:
                body["requirement"] = requirement
            body["priority"] = self.order[path][step]
            if body != info:
                self.ctx.client.put(f"{self._flows}/{seg(flow)}/executions", body, self.what)
            if is_flow(step):
                self._description(step.removeprefix(FLOW), info["flowId"], at)
                self._settle(step.removeprefix(FLOW), at, tree)
            else:
                self._config(info, at)

    def _description(self, alias: str, uuid: str, at: str) -> None:
        wanted = self.attrs.get(f"{at}.description")
        live = self.flows.get(alias)
        if wanted is None or alias in self.made or live is None or live.get("description") == wanted:
            return
        body = {"id": uuid, "alias": alias, "description": wanted, "providerId": live.get("providerId"),
                "topLevel": False, "builtIn": False}
        self.ctx.client.put(f"{self._flows}/{uuid}", body, f"sub-flow '{alias}' of {self.what}")

    def _config(self, info: dict, at: str) -> None:
        alias = self.attrs.get(f"{at}.config")
        if alias is None:
            return
        prefix = f"{at}.config."
        values = {f.removeprefix(prefix): v.reveal() if isinstance(v, Secret) else v
                  for f, v in self.attrs.items() if f.startswith(prefix)}
        what = f"authenticator config '{alias}' of {self.what}"
        config_id = info.get("authenticationConfig")
        if config_id is None:
            self.ctx.client.post(f"{self.ctx.base}/authentication/executions/{info['id']}/config",
                                 {"alias": alias, "config": values}, what, once=True)
            return
        current = self.configs.get(config_id) or self.ctx.client.get(
            f"{self.ctx.base}/authentication/config/{config_id}", what)
        # keys the file does not write keep their value (a secret's `**********` too: Keycloak keeps the stored
        # one for it, which is what the admin console relies on when it saves a config it read)
        merged = {**(current.get("config") or {}), **values}
        compared = {k for k in merged if not secret_key(f"{prefix}{k}")}  # secrets: write-only
        if current.get("alias") != alias or any(merged[k] != (current.get("config") or {}).get(k) for k in compared):
            self.ctx.client.put(f"{self.ctx.base}/authentication/config/{config_id}",
                                {"id": config_id, "alias": alias, "config": merged}, what)


class FlowBindingsKind(Kind):
    """The flows the realm uses (RealmRepresentation browserFlow, directGrantFlow, ...), one object per realm.

    Not deletable: a binding the file leaves out keeps its flow. Written with a PUT of
    the realm holding just those fields (Keycloak merges it).
    """

    name = "flow_bindings"
    label = "flow bindings"
    stage = 2  # after the flows it names
    deletable = False
    reads = frozenset(BINDINGS.values())

    def desired(self, spec) -> dict[str, Attrs]:
        if spec.flow_bindings is None:
            return {}
        return {spec.realm: drop_none({k: getattr(spec.flow_bindings, k) for k in BINDINGS})}

    def live(self, raw) -> dict[str, Attrs]:
        return {raw.name: {k: raw.export.get(f) for k, f in BINDINGS.items()}}

    def is_builtin(self, key: str, realm: str) -> bool:
        return True

    def create(self, ctx: ApplyContext, change) -> None:
        self.update(ctx, change)  # the realm, made in this apply, has Keycloak's bindings

    def update(self, ctx: ApplyContext, change) -> None:
        ctx.client.put(ctx.base, {BINDINGS[d.field]: d.after for d in change.diffs}, f"flow bindings of realm '{ctx.realm}'")

    def export(self, key, fields, ctx) -> None:
        bound = {k: fields[k] for k in BINDINGS if fields.get(k) is not None}
        if bound:
            ctx.doc["flow_bindings"] = bound
