"""bench/compare.py without Keycloak: BENCHMARKS.md's figures are the committed JSON's, and the realm variants are right.

The doc's generated section must be exactly what `python bench/compare.py
--report` renders from the newest bench/results/compare-*.json, so a figure
in the doc can never drift from the measurement it claims. No timing here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


compare = _bench_module()


def test_benchmarks_md_holds_the_section_rendered_from_the_newest_results():
    results = compare.newest_results()
    _, section, _ = compare.split_doc(compare.DOC.read_text())
    assert section == compare.generated_section(results), (
        f"BENCHMARKS.md is not what {results.name} gives: run `python bench/compare.py --report`")
    assert compare.plot_path(results).exists(), "the plot the doc embeds is committed beside the results"


def test_the_change_variant_changes_one_percent_and_the_delete_variant_drops_ten_percent():
    full = compare.realm_document("r", 1000)["clients"]
    changed = compare.realm_document("r", 1000, changed=True)["clients"]
    dropped = compare.realm_document("r", 1000, changed=True, dropped=True)["clients"]
    assert sum(a != b for a, b in zip(full, changed)) == 10
    assert len(dropped) == 900
    kept = {c["client_id"] for c in dropped}
    assert all(c["client_id"] in kept for a, c in zip(full, changed) if a != c), "a changed client is never dropped"
    assert {c["confidential"] for c in full} == {True, False}
    assert all(len(c["roles"]) == 1 and c["optional_scopes"] == ["mcp:tools"] for c in full)


def test_a_cell_shows_the_median_and_the_range_only_when_runs_differ():
    assert compare.cell(compare.summary([2.0, 1.0, 3.0]), ".1f") == "2.0 (1.0–3.0)"
    assert compare.cell(compare.summary([5, 5, 5]), ",.0f") == "5"
    assert compare.cell(compare.summary([1.0, None]), ".1f") == "—"


def test_a_failed_step_fails_its_target_and_is_shown():
    document = {"date": "2026-12-02T16:00:00+00:00", "machine": {"cores": 2, "cpu": "cpu", "ram_gb": 8, "os": "os"},
                "versions": {"kcprov": "0", "python": "3", "keycloak": "26", "python-keycloak": "7"},
                "peers": {}, "results": [],
                "failures": [{"clients": 10000, "run": 1, "step": "create", "error": "`kcprov apply` exited 1: Error: x"}]}
    section = compare.render_section(document, "plot.png")
    assert "| 10,000-client create completes, ≤ 2 requests per client | failed (see below) | **fail** |" in section
    assert "Failed: 10,000 clients, run 1, create: `kcprov apply` exited 1: Error: x" in section
