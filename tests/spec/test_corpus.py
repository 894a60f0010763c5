"""Every bad file fails with exactly the problems its header declares; every good file loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import BAD, GOOD, SECRET_VALUE, read_header

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
