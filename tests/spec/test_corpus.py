"""Every bad file fails with exactly the problems its header declares; every good file loads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import BAD, GOOD, SECRET_VALUE, read_header

from kcprov.cli import main
from kcprov.fileio import MAX_INPUT_BYTES
from kcprov.spec import SpecError, load_realm


def test_corpus_is_large_enough():
    assert len(BAD) >= 125 and len(GOOD) >= 3


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_file(path: Path):
    header = read_header(path)
    assert header.expects, f"{path.name} declares no '# expect:' line"
    with pytest.raises(SpecError) as caught:
        load_realm(path, header.vars, strict_secrets=header.strict_secrets, max_input_size=header.max_input_size)
    problems = caught.value.problems
    got = [(p.line, p.message, p.hint) for p in problems]
    assert len(problems) == len(header.expects), got
    for expect in header.expects:
        matching = [p for p in problems if p.line == expect.line and expect.message in p.message]
        assert matching, f"expected line {expect.line}: {expect.message!r}; got {got}"
        for hint in expect.hints:
            assert any(hint in (p.hint or "") for p in matching), f"hint {hint!r} not in {got}"
    assert all(p.file.endswith(path.name) and p.column >= 1 for p in problems)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_no_secret_value_in_any_message(path: Path):
    header = read_header(path)
    with pytest.raises(SpecError) as caught:
        load_realm(path, header.vars, strict_secrets=header.strict_secrets, max_input_size=header.max_input_size)
    assert SECRET_VALUE not in str(caught.value)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_file(path: Path):
    header = read_header(path)
    spec = load_realm(path, header.vars, strict_secrets=True)
    assert spec.realm


# ---------------------------------------------------------------- through the CLI


def _validate_args(path: Path) -> list[str]:
    header = read_header(path)
    args = ["validate", str(path)]
    args += [f"--var={name}={value}" for name, value in header.vars.items()]
    if header.strict_secrets:
        args.append("--strict-secrets")
    if header.max_input_size != MAX_INPUT_BYTES:
        args.append(f"--max-input-size={header.max_input_size}")
    return args


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_cli_validate_reports_file_line_and_exits_1(path: Path, monkeypatch, capsys):
    """`kcprov validate FILE` in this process: exit 1, every declared `file:line:`, no traceback."""
    monkeypatch.setattr(sys, "argv", ["kcprov", *_validate_args(path)])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    assert exited.value.code == 1, out + err
    for expect in read_header(path).expects:
        assert f"{path.name}:{expect.line}:" in err, err
    assert "Traceback" not in out + err and SECRET_VALUE not in out + err


def test_cli_validate_in_a_real_process():
    """One `kcprov validate` process over every bad file that needs no option: the real entry point, stderr, exit 1."""
    plain = [p for p in BAD if _validate_args(p) == ["validate", str(p)]]
    done = subprocess.run(
        [sys.executable, "-c", "from kcprov.cli import main; main()", "validate", *map(str, plain)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    missing = [p.name for p in plain if not re.search(rf"{re.escape(p.name)}:\d+:\d+: error:", done.stderr)]
    assert not missing and len(plain) >= 100
