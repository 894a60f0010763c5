"""Every command, used wrongly, answers like click does: a message and the usage, exit 2, never a traceback.

The command tree is walked from the real app, so a command or option added
later is covered without touching this file. Each case runs `kcprov.cli.main`
in-process (what the console script runs, before its fast exit: tests/test_cli_exit.py) with a fake argv.
"""

from __future__ import annotations

import sys

import pytest
import typer

from kcprov import __version__
from kcprov.cli import app, main


def _commands(group, path: tuple[str, ...] = ()):
    # typer vendors its own click (typer._click): duck typing, not isinstance against the click package
    if hasattr(group, "commands"):
        for name, command in sorted(group.commands.items()):
            yield from _commands(command, (*path, name))
    else:
        yield path, group


COMMANDS = list(_commands(typer.main.get_command(app)))


def _arguments(command) -> list:
    return [p for p in command.params if p.param_type_name == "argument"]


def _numeric(param) -> bool:
    descriptor = getattr(param, "type_descriptor", None)  # typer >= 0.2x; click's ParamType before
    if descriptor is not None:
        return descriptor.annotation in (int, float)
    return param.type.name in ("integer", "float")


def _cases():
    for path, command in COMMANDS:
        name = " ".join(path)
        yield pytest.param([*path, "--no-such-option"], id=f"{name}: unknown option")
        required = [p for p in _arguments(command) if p.required]
        if required:
            yield pytest.param(list(path), id=f"{name}: missing argument")
        elif not _arguments(command):
            yield pytest.param([*path, "unexpected-extra"], id=f"{name}: extra argument")
        if required and all(p.nargs == 1 for p in required):
            yield pytest.param([*path, "a.yaml", "b.yaml"], id=f"{name}: extra argument")
        for param in command.params:
            if param.param_type_name == "option" and not param.is_flag and _numeric(param):
                args = ["x.yaml"] if required else []
                yield pytest.param([*path, *args, param.opts[0], "not-a-number"], id=f"{name}: {param.opts[0]} bad value")
    yield pytest.param(["no-such-command"], id="unknown command")
    yield pytest.param(["dev", "no-such-command"], id="dev: unknown command")
    yield pytest.param(["--no-such-option"], id="unknown top-level option")


CASES = list(_cases())


def run_main(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["kcprov", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_the_walk_finds_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"validate", "plan", "apply", "env", "schema", "dev up", "dev down", "dev credentials"} <= names


@pytest.mark.parametrize("args", CASES)
def test_bad_usage_is_a_message_and_exit_2(monkeypatch, capsys, tmp_path, args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KCPROV_HOME", str(tmp_path / "home"))
    code, out, err = run_main(monkeypatch, capsys, args)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert "Usage:" in err
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_version(monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, ["--version"])
    assert code == 0 and out.startswith(f"kcprov {__version__} ")


def test_help_shows_the_environment_variables_and_no_secret(monkeypatch, capsys):
    monkeypatch.setenv("KCPROV_PASSWORD", "canary-password-in-env")
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_main(monkeypatch, capsys, ["plan", "--help"])
    assert code == 0
    for name in ("KCPROV_URL", "KCPROV_USER", "KCPROV_PASSWORD", "KCPROV_CLIENT_SECRET", "KCPROV_TIMEOUT"):
        assert name in out
    assert "canary-password-in-env" not in out
    assert "Keycloak base URL (default: the dev server)" in out  # no help text eaten as markup
