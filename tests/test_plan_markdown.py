"""`kcprov plan --format markdown`: a pull-request comment no name can break, and no secret in it.

The structure is checked the way a forge shows it: the Markdown is parsed
(markdown-it-py, CommonMark with HTML on, plus GFM tables and
strikethrough) and the tokens must be exactly the ones the renderer means:
one `<details>` block per realm, one ```diff fence, list items whose text is
the name as written. Hostile names (a fence closer, `</details>`, HTML,
links, pipes, bidi overrides) come from both sides a plan reads: the realm
file under review and Keycloak (DCR clients name themselves).

The snapshot of `realms/mcp-dev.yaml` planned against a realm that does not
exist keeps the comment stable; after an intended change, re-run with
KCPROV_UPDATE_SNAPSHOTS=1 and review the diff of tests/snapshots/.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from rich.console import Console

from kcprov.plan.changes import Change, FieldDiff, Plan, PlanWarning
from kcprov.plan.dcr import DcrClient
from kcprov.plan.markdown import LISTED, MARKER, MAX_CHARS, code, diff_lines, prose, render_markdown
from kcprov.plan.render import render_text
from kcprov.secret import Secret
from kcprov.terminal import printable
from kindcontract import kcprov, ok

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "snapshots" / "plan-mcp-dev.md"
CANARY = "canary-secret-4711"

HOSTILE = [
    "evil```\n</details>\n\n# pwned",
    "</details><script>alert(1)</script>",
    "a | b | c",
    "`tick` ``double`` ````",
    "<img src=x onerror=alert(1)>",
    "[click](https://evil.example) ![i](x)",
    "**bold** _em_ ~~strike~~ $x^2$ &amp;",
    "\u202eevil\x1b[2J",
    "1. numbered",
    "# heading",
    "- item",
    "> quote",
    "\\`escaped",
    "@everyone and @org/team, not alice@example.com",
]
TITLES = {"Warnings", "Named by this file but not created by kcprov", "Not managed by this file"}


def md() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def hostile_plan() -> Plan:
    group = HOSTILE[5]
    changes = [
        Change("create", "client", HOSTILE[0], 3, (FieldDiff(HOSTILE[2], None, HOSTILE[3]),
                                                   FieldDiff("secret", None, Secret(CANARY)),
                                                   FieldDiff(HOSTILE[6], None, {"k": Secret(CANARY)}, default=True)),
               group=group),
        Change("update", "user", HOSTILE[4], 4, (FieldDiff("password", Secret("old-" + CANARY), Secret(CANARY)),
                                                 FieldDiff("name", HOSTILE[7], HOSTILE[8]))),
        Change("delete", "role", HOSTILE[9], 2, (FieldDiff("description", None, HOSTILE[10]),)),
        Change("adopt", "client_scope", HOSTILE[11], 1),
    ]
    named = HOSTILE[:LISTED - len(HOSTILE)]  # DCR clients, listed one by one
    unmanaged = [("client", h) for h in HOSTILE] + [("client", f"dcr-{i}") for i in range(len(named))]
    dcr = {("client", f"dcr-{i}"): DcrClient(h, datetime(2026, 11, 30, tzinfo=timezone.utc) if i % 2 else None)
           for i, h in enumerate(named)}
    return Plan(realm=HOSTILE[1], realm_exists=True, changes=changes, managed_count=3, live_fingerprint="x",
                unmanaged=unmanaged, warnings=[PlanWarning(f"w-{i}", h) for i, h in enumerate(HOSTILE)],
                not_adopted=[("role", h) for h in HOSTILE], dcr_clients=dcr)


def _inline_text(token) -> str:
    return "".join(c.content for c in token.children or () if c.type in ("text", "code_inline", "softbreak"))


def check_structure(text: str, plans: list[Plan]) -> list:
    """Parse `text` and assert it has the renderer's shape and nothing else; return the tokens."""
    tokens = md().parse(text)
    blocks = [t.content for t in tokens if t.type == "html_block"]
    assert blocks[0] == MARKER + "\n"
    assert all(b.startswith("<details>\n<summary><b>Realm <code>") and b.count("\n") == 2 for b in blocks[1::2])
    assert blocks[2::2] == ["</details>\n"] * len(plans)
    assert len(blocks) == 1 + 2 * len(plans)
    fences = [t for t in tokens if t.type == "fence"]
    assert [f.info for f in fences] == ["diff"] * sum(1 for p in plans if not p.empty)
    for fence, plan in zip(fences, [p for p in plans if not p.empty]):
        assert fence.content.splitlines() == diff_lines(plan)  # every line inside the fence, none outside
    kinds = {t.type for t in tokens}
    assert not kinds & {"table_open", "blockquote_open", "ordered_list_open", "code_block", "hr"}
    assert [t.tag for t in tokens if t.type == "heading_open"] == ["h4"]
    for token in tokens:
        for child in token.children or ():
            assert child.type not in ("html_inline", "link_open", "image", "em_open", "s_open"), (child, token.content)
            assert child.type != "text" or not re.search(r"(?<!\w)@\w", child.content), child.content  # a mention
        strong = [i for i, c in enumerate(token.children or ()) if c.type == "strong_open"]
        for i in strong:
            assert token.children[i + 1].content in TITLES
    rendered = md().render(text)
    assert rendered.count("<details>") == rendered.count("</details>") == len(plans)
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    assert CANARY not in text
    return tokens


def test_hostile_names_cannot_break_the_comment():
    plans = [hostile_plan(), Plan("quiet", True, [], 0, "y")]
    text = render_markdown(plans, "https://kc.example/`x`")
    tokens = check_structure(text, plans)
    items = [_inline_text(tokens[i + 2]) for i, t in enumerate(tokens) if t.type == "list_item_open"]
    # every warning and every listed object reads exactly as written (made printable), nothing swallowed
    for i, h in enumerate(HOSTILE):
        assert f"{printable(h).strip()} [w-{i}]" in items
        assert f"client.{printable(h)}" in items and f"role.{printable(h)}" in items
    for i, h in enumerate(HOSTILE[:LISTED - len(HOSTILE)]):
        when = " on 2026-11-30" if i % 2 else ""
        assert f"client.dcr-{i} {printable(h)}, registered by DCR{when}" in items
    assert "\u202e" not in text and "\x1b" not in text and "\\u202eevil\\x1b[2J" in text
    summary = md().render(text).split("<summary>")[1].split("</summary>")[0]
    assert "&lt;/details&gt;&lt;script&gt;" in summary
    assert "(sensitive)" in text and "(sensitive) (changed)" in text


def test_the_diff_shows_what_the_text_plan_shows():
    plan = hostile_plan()
    plan.warnings, plan.unmanaged, plan.not_adopted = [], [], []
    terminal = io.StringIO()
    render_text([plan], Console(file=terminal, width=10_000, no_color=True, highlight=False))

    def signed(lines):  # the change and field lines, indentation aside
        return [re.sub(r"^\s*([-+~=])\s+", r"\1 ", line).rstrip() for line in lines if re.match(r"^\s*[-+~=] ", line)]

    assert signed(diff_lines(plan)) == signed(terminal.getvalue().splitlines())
    lines = diff_lines(plan)
    assert lines[0] == "= client_scope.> quote (exists, will be adopted)"
    assert "~     password = (sensitive) (changed)" in lines
    assert "- role.# heading" in lines and not any("- item" in line for line in lines)  # deletes list no fields
    assert any(line.startswith("+     secret ") and line.endswith(" = (sensitive)") for line in lines)
    assert any(line.endswith(' = {"k": "(sensitive)"} (default)') for line in lines)
    assert "# MCP server '[click](https://evil.example) ![i](x)'" in lines


def test_escaping_helpers():
    assert prose("1. x") == "1\\. x" and prose("# x") == "\\# x" and prose("a*b_c") == "a\\*b\\_c"
    assert prose("plain words: it's fine.") == "plain words: it's fine."
    assert code("a`b") == "`` a`b ``"
    assert md().parse(f"x {code('``` </details>')} y")[1].children[1].content == "``` </details>"


def test_many_dcr_clients_are_summed_up_and_the_rest_listed():
    names = ["@everyone </details>", "Claude Code", "Claude Code", *[f"inspector-{i}" for i in range(10)]]
    dcr = {("client", f"uuid-{i}"): DcrClient(n, None) for i, n in enumerate(names)}
    plans = [Plan("r", True, [], 0, "z", unmanaged=[*dcr, ("role", "by-hand")], dcr_clients=dcr)]
    text = render_markdown(plans)
    tokens = check_structure(text, plans)
    items = [_inline_text(tokens[i + 2]) for i, t in enumerate(tokens) if t.type == "list_item_open"]
    assert items[0] == "role.by-hand" and len(items) == 2
    assert items[1].startswith("13 clients registered by DCR: 2 'Claude Code', 1 '@everyone </details>'")
    assert "uuid-" not in text


def test_an_empty_plan_says_so_and_has_no_fence():
    plans = [Plan("r", True, [], 0, "z")]
    text = render_markdown(plans)
    check_structure(text, plans)
    assert "No changes. The realm matches the file." in text and ": no changes</summary>" in text


def test_a_huge_plan_is_cut_below_the_forge_limit_and_stays_well_formed():
    changes = [Change("create", "client", f"client-{i:05d}", 3,
                      tuple(FieldDiff(f"field_{j}", None, "v" * 40) for j in range(6))) for i in range(2000)]
    plans = [Plan("big", False, changes, 0, "z"), Plan("small", True, changes[:2], 0, "z")]
    text = render_markdown(plans)
    assert len(text) <= MAX_CHARS
    assert "more lines: the comment would be too long" in text
    tokens = md().parse(text)
    assert [t.info for t in tokens if t.type == "fence"] == ["diff", "diff"]
    assert text.count("<details>") == text.count("</details>") == 2


def test_json_and_markdown_together_are_a_usage_error(monkeypatch, capsys):
    from kcprov.cli import main

    monkeypatch.setattr(sys, "argv", ["kcprov", "plan", "x.yaml", "--json", "--format", "markdown"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2 and "--json" in capsys.readouterr().err


@pytest.fixture
def env(keycloak):
    return {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
            "KCPROV_PASSWORD": keycloak.password, "ALICE_PASSWORD": CANARY, "NO_COLOR": "1", "COLUMNS": "200"}


def test_mcp_dev_against_an_absent_realm_matches_the_snapshot(tmp_path, env, keycloak, realm_name):
    source = tmp_path / "mcp-dev.yaml"
    source.write_text(re.sub(r"(?m)^realm: mcp-dev$", f"realm: {realm_name}", (ROOT / "realms/mcp-dev.yaml").read_text()))
    result = ok(kcprov("plan", str(source), "--format", "markdown", "-o", "plan.json", env=env, cwd=tmp_path), CANARY)
    text = result.stdout.replace(realm_name, "REALM").replace(keycloak.url, "KEYCLOAK_URL")
    assert CANARY not in (tmp_path / "plan.json").read_text()
    assert "Saved plan to plan.json" in result.stderr  # the comment on stdout stays clean
    tokens = md().parse(text)
    assert [t.info for t in tokens if t.type == "fence"] == ["diff"]
    assert text.count("<details>") == text.count("</details>") == 1
    assert "password       = (sensitive)" in text and "(new realm)" in text
    html = md().render(text)
    assert CANARY not in html and "<script" not in html
    if os.environ.get("KCPROV_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "the markdown plan changed: review, then KCPROV_UPDATE_SNAPSHOTS=1"

    # --format json is --json; both print names as they are (rich's console would make :fire: an emoji)
    source.write_text(source.read_text().replace("description: May call MCP tools", "description: ':fire: tools:'"))
    as_json = ok(kcprov("plan", str(source), "--format", "json", env=env, cwd=tmp_path), CANARY).stdout
    assert json.loads(as_json) == json.loads(ok(kcprov("plan", str(source), "--json", env=env, cwd=tmp_path)).stdout)
    assert '"after": ":fire: tools:"' in as_json
    markdown = ok(kcprov("plan", str(source), "--format", "markdown", env=env, cwd=tmp_path)).stdout
    assert 'description = ":fire: tools:"' in markdown
