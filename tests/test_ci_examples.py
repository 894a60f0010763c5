"""The CI examples and the pre-commit hooks run commands that exist, and fit together.

Copied workflows fail where nobody looks until a merge: so every workflow file
under examples/ci must parse as YAML, and every `kcprov ...` command line in
it (GitHub `run:` steps, GitLab `script:` lists, the shell blocks of
examples/ci/README.md) must name a command of the real command tree, only
options that command has, and its required arguments. The tree is walked
from the typer app as tests/test_cli_usage.py does, so a renamed option
fails here. The pieces that hand over to each other must agree: the artifact
and workflow names between plan and apply, the marker comment that finds the
earlier plan comment, the GitLab plan job's name.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from kcprov.cli import app, main
from kcprov.plan.markdown import MARKER

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "examples" / "ci"
GITHUB = sorted((CI / "github").glob("*.yml"))
GITLAB = CI / "gitlab" / ".gitlab-ci.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
TREE = typer.main.get_command(app)
# shell words after which a word is a command again
COMMAND_POSITION = {"&&", "||", ";", "|", "(", "then", "do", "else", "!", "time", "exec"}
OPERATORS = {"&&", "||", ";", "|", ">", ">>", "<", "&", ")"}


def _load(path: Path):
    return yaml.safe_load(path.read_text())


def _github_scripts(path: Path):
    for job in _load(path)["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                yield step["run"]


def _gitlab_scripts(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("script", "before_script", "after_script"):
                yield "\n".join(value) if isinstance(value, list) else value
            else:
                yield from _gitlab_scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _gitlab_scripts(item)


def _readme_scripts():
    yield from re.findall(r"```(?:sh|bash|console)\n(.*?)```", (CI / "README.md").read_text(), re.S)


def kcprov_lines(script: str) -> list[list[str]]:
    """Each kcprov invocation in a shell script, as its words (up to a pipe, redirect or `&&`)."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
        for i, word in enumerate(words):
            if word == "kcprov" and (i == 0 or words[i - 1] in COMMAND_POSITION):
                rest = words[i + 1:]
                end = next((j for j, w in enumerate(rest) if w in OPERATORS), len(rest))
                found.append(["kcprov", *rest[:end]])
    return found


def _cases():
    sources = [*((p, s) for p in GITHUB for s in _github_scripts(p)),
               *((GITLAB, s) for s in _gitlab_scripts(_load(GITLAB))),
               *((CI / "README.md", s) for s in _readme_scripts())]
    for path, script in sources:
        for words in kcprov_lines(script):
            yield pytest.param(words, id=f"{path.relative_to(ROOT)}: {' '.join(words)}")


CASES = list(_cases())


def check_command_line(words: list[str]) -> None:
    """Assert `words` (kcprov ...) is a command line the real CLI accepts: command, options, arguments."""
    command, rest = TREE, words[1:]
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        if rest[0] == "audit" and "audit" not in command.commands:
            pytest.skip("kcprov audit is not in this build yet")
        assert rest[0] in command.commands, f"no command {rest[0]!r} in {' '.join(words)}"
        command, rest = command.commands[rest[0]], rest[1:]
    assert not hasattr(command, "commands"), f"{' '.join(words)}: names a group, not a command"
    options = {opt: p for p in command.params if p.param_type_name == "option" for opt in (*p.opts, *p.secondary_opts)}
    positional = 0
    while rest:
        word, rest = rest[0], rest[1:]
        if word.startswith("-") and word != "-":
            name = word.split("=", 1)[0]
            assert name in options or name == "--help", f"{' '.join(words)}: no option {name} for this command"
            if name in options and not options[name].is_flag and "=" not in word:
                assert rest, f"{' '.join(words)}: {name} needs a value"
                rest = rest[1:]
        else:
            positional += 1
    required = sum(1 for p in command.params if p.param_type_name == "argument" and p.required)
    assert positional >= required, f"{' '.join(words)}: missing arguments"


def test_every_example_has_its_kcprov_lines_found():
    commands = {" ".join(w[1:2]) for w in (c.values[0] for c in CASES)}
    assert {"validate", "audit", "plan", "apply"} <= commands
    assert ["kcprov", "plan", "$REALM_FILES", "--format", "markdown", "-o", "plan.json"] in [c.values[0] for c in CASES]
    assert kcprov_lines('x=$(kcprov plan a.yaml --json | jq .) && pip install kcprov && kcprov apply p.json') == [
        ["kcprov", "plan", "a.yaml", "--json"], ["kcprov", "apply", "p.json"]]


@pytest.mark.parametrize("words", CASES)
def test_the_commands_in_the_examples_exist(words):
    check_command_line(words)


def test_the_checker_refuses_what_the_cli_refuses():
    for bad in (["kcprov", "plan", "a.yaml", "--no-such-option"], ["kcprov", "nope"], ["kcprov", "apply"],
                ["kcprov", "plan", "a.yaml", "-o"], ["kcprov", "dev"]):
        with pytest.raises(AssertionError):
            check_command_line(bad)


@pytest.mark.parametrize("schema, files", [("vendor.github-workflows", GITHUB), ("vendor.gitlab-ci", [GITLAB])],
                         ids=["github", "gitlab"])
def test_the_workflows_follow_the_forges_schemas(schema, files):
    """SchemaStore's schemas of workflow files, as vendored by check-jsonschema (no network)."""
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflows_fit_together():
    workflows = {p.name: _load(p) for p in GITHUB}
    assert set(workflows) == {"kcprov-validate.yml", "kcprov-plan.yml", "kcprov-apply.yml"}
    for name, workflow in workflows.items():
        assert workflow.get(True) or workflow.get("on"), name  # PyYAML reads the key `on` as True
        for job in workflow["jobs"].values():
            assert job["runs-on"] and job["steps"]
            for step in job["steps"]:
                assert "uses" not in step or re.search(r"@v\d+$", step["uses"]), step["uses"]  # pinned major
    plan_steps = workflows["kcprov-plan.yml"]["jobs"]["plan"]["steps"]
    upload = next(s for s in plan_steps if s.get("uses", "").startswith("actions/upload-artifact"))
    comment = next(s for s in plan_steps if s.get("uses", "").startswith("actions/github-script"))
    assert MARKER in comment["with"]["script"]
    fetch = "\n".join(_github_scripts(CI / "github" / "kcprov-apply.yml"))
    assert f"--name {upload['with']['name']}" in fetch and "--workflow kcprov-plan.yml" in fetch
    assert "plan.json" in upload["with"]["path"]
    assert set(workflows["kcprov-plan.yml"][True]) == {"pull_request"}  # never pull_request_target: secrets + PR code


def test_gitlab_pipeline_fits_together():
    pipeline = _load(GITLAB)
    jobs = {k: v for k, v in pipeline.items() if isinstance(v, dict) and "script" in v}
    assert set(jobs) == {"kcprov-validate", "kcprov-plan", "kcprov-apply"}
    assert all(job["stage"] in pipeline["stages"] for job in jobs.values())
    spec = importlib.util.spec_from_file_location("kcprov_gitlab", CI / "gitlab" / "kcprov_gitlab.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    assert helper.MARKER == MARKER and helper.PLAN_JOB in jobs
    assert "plan.json" in jobs["kcprov-plan"]["artifacts"]["paths"]


def test_pre_commit_hooks_run_commands_that_exist():
    hooks = {h["id"]: h for h in _load(HOOKS)}
    assert set(hooks) == {"kcprov-validate", "kcprov-audit"}
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["name"]
        pattern = re.compile(hook["files"])
        assert pattern.search("realms/mcp-dev.yaml") and pattern.search("infra/realms/a.yml")
        assert not pattern.search("docs/realms.md") and not pattern.search(".github/workflows/x.yml")
    check_command_line([*hooks["kcprov-validate"]["entry"].split(), "realms/mcp-dev.yaml"])
    if "audit" in TREE.commands:
        check_command_line([*hooks["kcprov-audit"]["entry"].split(), "realms/mcp-dev.yaml"])


def test_the_validate_hook_passes_on_the_shipped_realms(monkeypatch, capsys):
    entry = _load(HOOKS)[0]["entry"].split()
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [*entry, *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "realms").glob("*.yaml")))])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code in (0, None), capsys.readouterr()


def _step(path: Path, job: str, name: str) -> str:
    return next(s["run"] for s in _load(path)["jobs"][job]["steps"] if s.get("name") == name)


def test_the_plan_and_apply_steps_run_as_written(tmp_path, keycloak, realm_name):
    """The GitHub plan step, then the apply step on its saved plan, through bash against the real Keycloak;
    a plan made before a hand edit of the realm is refused as stale."""
    (tmp_path / "realms").mkdir()
    source = (ROOT / "realms" / "mcp-dev.yaml").read_text()
    (tmp_path / "realms" / "mcp-dev.yaml").write_text(re.sub(r"(?m)^realm: mcp-dev$", f"realm: {realm_name}", source))
    env = {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user, "KCPROV_PASSWORD": keycloak.password,
           "REALM_FILES": "realms/*.yaml", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "NO_COLOR": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def step(path: Path, job: str, name: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-euo", "pipefail", "-c", _step(path, job, name)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    plan, apply = CI / "github" / "kcprov-plan.yml", CI / "github" / "kcprov-apply.yml"
    planned = step(plan, "plan", "Plan")
    assert planned.returncode == 0, planned.stderr
    assert (tmp_path / "plan.md").read_text().startswith(MARKER) and "(new realm)" in (tmp_path / "summary.md").read_text()
    applied = step(apply, "apply", "Apply it (refused if stale)")
    assert applied.returncode == 0 and f"Applied realm '{realm_name}'" in applied.stdout, applied.stderr
    assert not (tmp_path / "examples").exists()  # --no-env: no env file on a CI runner

    assert step(plan, "plan", "Plan").returncode == 0
    assert ": no changes" in (tmp_path / "plan.md").read_text()
    keycloak.admin().update_realm(realm_name, {"displayName": "changed by hand"})
    stale = step(apply, "apply", "Apply it (refused if stale)")
    assert stale.returncode == 1 and "is stale" in stale.stderr
