"""Plans as Markdown, for pull-request and merge-request comments (octoDNS's PlanMarkdown).

Rendering never computes anything: it takes the same Plans as the text
renderer and shows the same lines (`show` and `SIGNS` from `render`, so a
secret is `(sensitive)` here exactly as on the terminal). One collapsible
`<details>` block per realm, its summary line counting the changes, the
diff in a fenced ```diff block (+ create, ~ update, - delete, = adopt:
GitHub and GitLab colour the first two columns' + and -), warnings as a list,
the objects left alone as a short list.

Names and values come from realm files (the pull request under review) and
from Keycloak (a client registered anonymously through DCR names itself), so
none may change the comment's structure: a name closing the diff fence,
`</details>`, a table pipe, HTML or a link would let a hostile object hide
a deletion from the reviewer. Every outside string is first made
`printable` (no newline, control or bidi character: one string is one
line and reads as written), then put where Markdown takes it literally:
inside the fenced block (its fence longer than any backtick run in it),
inside a code span (same rule), HTML-escaped inside the `<summary>` HTML,
or, in prose, with the punctuation that could mean something backslash-escaped
(CommonMark makes it literal then) and `@mentions` in code spans (a forge
notifies whoever a mention in prose names).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kcprov.errors import KcprovError
from kcprov.plan.changes import Change, FieldDiff, Plan, PlanWarning
from kcprov.plan.dcr import DcrClient
from kcprov.plan.render import DCR_LISTED, SIGNS, dcr_summary, show
from kcprov.secret import SENSITIVE
from kcprov.terminal import printable

# A CI job finds its earlier comment by this line and updates it instead of adding one per push.
MARKER = "<!-- kcprov-plan -->"
# GitHub refuses comments over 65,536 characters; the diff is cut to stay below (the artifact has it all).
MAX_CHARS = 60_000
LISTED = 20  # objects listed per realm under "not managed" / "not created by kcprov"

# what starts inline markup anywhere: code, emphasis, links, HTML, entities, tables, strikethrough, math
_INLINE = re.compile(r"[\\`*_\[\]<>&!|~$]")
# what opens a block at the start of a line (a heading, quote, list, rule, fence): any punctuation, or `1.`
_BLOCK_START = re.compile(r"^(\d*)([!-/:-@\[\]-`{-~])")
_BACKTICKS = re.compile(r"`+")
_MENTION = re.compile(r"(?<!\w)(@\w[\w./-]*)")


def prose(text: object) -> str:
    """Outside text as literal Markdown prose on one line: no markup, HTML, list, heading or mention it could start.

    CommonMark makes a backslash-escaped ASCII punctuation character literal;
    only the characters that can mean something where they stand are escaped.
    An `@name` is put in a code span: GitHub and GitLab notify whoever it names
    (`@org/team`, `@all`) unless it is code, and no escape prevents that.
    """
    parts = _MENTION.split(printable(text).strip())
    text = "".join(code(part) if i % 2 else _INLINE.sub(lambda m: "\\" + m.group(), part) for i, part in enumerate(parts))
    return text if text.startswith(("\\", "`")) else _BLOCK_START.sub(r"\1\\\2", text, count=1)


def _fence_for(text: str, least: int) -> str:
    return "`" * max(least, max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)


def code(text: object) -> str:
    """Outside text as an inline code span; the padding spaces are stripped by CommonMark."""
    text = printable(text)
    fence = _fence_for(text, 1)
    return f"{fence} {text} {fence}"


def _field_line(change: Change, d: FieldDiff, width: int) -> str:
    name = d.field.ljust(width)
    if change.action == "create":
        return f"{name} = {show(d.after)}" + (" (default)" if d.default else "")
    if change.action == "delete":
        return f"{name} = {show(d.before)}"
    if d.sensitive:
        return f"{name} = {SENSITIVE} (changed)"
    return f"{name} = {show(d.before)} -> {show(d.after)}"


def diff_lines(plan: Plan) -> list[str]:
    """The plan's changes as the text plan lists them, the sign in the first column (for diff colouring)."""
    lines: list[str] = []
    groups: dict[str | None, list[Change]] = {}
    for change in plan.changes:  # realm-level objects first, then one block per MCP server
        groups.setdefault(change.group, []).append(change)
    for group in sorted(groups, key=lambda g: (g is not None, g or "")):
        if group:
            lines += ["", f"# MCP server '{group}'"]
        for change in groups[group]:
            sign = SIGNS[change.action][0]
            lines.append(f"{sign} {change.address}" + (" (exists, will be adopted)" if change.action == "adopt" else ""))
            diffs = change.diffs if change.action != "delete" else ()
            width = max((len(d.field) for d in diffs), default=0)
            lines += [f"{sign}     {_field_line(change, d, width)}" for d in diffs]
    return [printable(line) for line in lines]


def _unsafe(plan: Plan) -> list[str]:
    try:
        plan.raise_if_unsafe()
    except KcprovError as exc:
        return [f"- {prose(exc.message)} {code('kcprov apply')} will refuse it without {code('--force')}."]
    return []


def _warning(warning: PlanWarning) -> str:
    return f"- {prose(warning.message)} {code(f'[{warning.id}]')}"


def _dcr_note(dcr: DcrClient | None) -> str:
    """What a DCR client calls itself (its own choice: in a code span) and when it registered."""
    if dcr is None:
        return ""
    name = code(dcr.name) if dcr.name else "(no client\\_name)"
    return f" {name}, registered by DCR" + (f" on {dcr.registered:%Y-%m-%d}" if dcr.registered else "")


def _listed(title: str, items: Sequence[str], notes: Sequence[str] = (), footer: Sequence[str] = ()) -> list[str]:
    if not items and not footer:
        return []
    notes = list(notes) or [""] * len(items)
    more = [f"- … and {len(items) - LISTED} more (`kcprov plan` lists them all)"] if len(items) > LISTED else []
    return [title, "", *[f"- {code(item)}{note}" for item, note in zip(items[:LISTED], notes)], *more, *footer, ""]


def _unmanaged(plan: Plan) -> list[str]:
    """The objects left alone; DCR clients by name, or summed up in one line when there are many (as in text)."""
    summed = len(plan.dcr_clients) > DCR_LISTED
    keys = [k for k in plan.unmanaged if not (summed and k in plan.dcr_clients)]
    footer = [f"- {prose(dcr_summary(list(plan.dcr_clients.values())))}"] if summed else []
    return _listed("**Not managed by this file** (left alone; `--prune` deletes them):",
                   [f"{kind}.{key}" for kind, key in keys], [_dcr_note(plan.dcr_clients.get(k)) for k in keys], footer)


@dataclass(frozen=True)
class _Realm:
    plan: Plan
    diff: list[str]

    def render(self, shown: int) -> str:
        plan = self.plan
        warnings = _unsafe(plan) + [_warning(w) for w in plan.warnings]
        counts = "no changes" if plan.empty else plan.summary()
        noted = f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else ""
        new = " (new realm)" if not plan.realm_exists else ""
        out = ["<details>", f"<summary><b>Realm <code>{html.escape(printable(plan.realm))}</code></b>{new}: "
               f"{counts}{noted}</summary>", ""]
        if warnings:
            out += ["**Warnings**", "", *warnings, ""]
            if plan.warnings:
                out += ["`--quiet-warning ID` or `x-kcprov-quiet-warnings: [ID]` in the file silences a warning.", ""]
        if plan.empty:
            out += ["No changes. The realm matches the file." if plan.deferred is None else
                    "Nothing to adopt: what the file names is managed by kcprov already, or does not exist.", ""]
        else:
            body = self.diff[:shown]
            if shown < len(self.diff):
                body.append(f"# … {len(self.diff) - shown} more lines: the comment would be too long "
                            "(`kcprov plan` and the saved plan have them all)")
            fence = _fence_for("\n".join(body), 3)
            out += [f"{fence}diff", *body, fence, ""]
        if plan.deferred:
            out += _listed("Left for `kcprov apply` (adopt changes nothing):",
                           [f"{SIGNS[c.action][0]} {c.address}" for c in plan.deferred])
        out += _listed("**Named by this file but not created by kcprov** (not owned: removing them from the file "
                       "leaves them in place; `kcprov adopt` or `apply --adopt` takes them over):",
                       [f"{kind}.{key}" for kind, key in plan.not_adopted])
        out += _unmanaged(plan)
        return "\n".join([*out, "</details>", ""])


def render_markdown(plans: Sequence[Plan], url: str | None = None, max_chars: int = MAX_CHARS) -> str:
    """The plans as one Markdown comment, at most about `max_chars` long (long diffs are cut, saying so)."""
    realms = [_Realm(p, diff_lines(p)) for p in plans]
    total = {a: sum(p.count(a) for p in plans) for a in ("adopt", "create", "update", "delete")}
    adopting = f"{total['adopt']} to adopt, " if total["adopt"] else ""
    where = f" against {code(url)}" if url else ""
    head = [MARKER, f"#### kcprov plan{where}: {adopting}{total['create']} to create, {total['update']} to update, "
            f"{total['delete']} to delete", ""]

    def document(shown: list[int]) -> str:
        return "\n".join(head) + "\n" + "\n".join(r.render(n) for r, n in zip(realms, shown))

    full = document([len(r.diff) for r in realms])
    if len(full) <= max_chars:
        return full
    budget = max_chars - len(document([0] * len(realms)))  # what is left for diff lines, realm by realm
    shown = []
    for realm in realms:
        n = 0
        while n < len(realm.diff) and budget - len(realm.diff[n]) - 1 >= 0:
            budget -= len(realm.diff[n]) + 1
            n += 1
        shown.append(n)
    return document(shown)
