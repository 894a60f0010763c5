"""yamldoc's two event sources, libyaml and PyYAML's pure-Python parser, read every realm file alike.

The pure-Python parser only runs where PyYAML has no C extension, so nothing
else would notice if it drifted from libyaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from corpus import BAD, GOOD, read_header

from kcprov.spec import yamldoc
from kcprov.spec.template import TemplateProblem, render
from kcprov.spec.yamldoc import YamlIssue, decode, parse

ROOT = Path(__file__).parents[2]
FILES = [*GOOD, *BAD, *sorted((ROOT / "realms").glob("*.yaml")), *sorted((ROOT / "tests/realms").glob("*.yaml")),
         ROOT / "tests/e2e/realm.yaml"]
PURE_SPLITS_AT_QUESTION_MARK = {"client_id_question", "scope_name_question"}
KNOWN_DIFFERENCE = "PyYAML's pure-Python scanner ends a plain scalar at '?' inside [...]; libyaml and YAML 1.2 do not"


def _outcome(text: str, parser: type) -> tuple:
    try:
        document = parse(text, parser)
    except YamlIssue as issue:  # the wording and column of a syntax error differ; its line does not
        return "issue", issue.position[0]
    return document.data, [(issue.position, issue.message) for issue in document.issues]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_pure_python_parser_reads_every_file_as_libyaml_does(path: Path):
    if path.stem in PURE_SPLITS_AT_QUESTION_MARK:
        pytest.skip(KNOWN_DIFFERENCE)
    try:
        text = render(decode(path.read_bytes()), read_header(path).vars).text
    except (YamlIssue, TemplateProblem):
        return  # refused before parsing: no events to compare
    assert _outcome(text, yamldoc._PurePyYamlParser) == _outcome(text, yamldoc._EventParser)


def test_libyaml_is_used_where_pyyaml_has_it():
    assert yaml.__with_libyaml__ and yamldoc._EventParser is yaml.cyaml.CParser


@pytest.mark.parametrize("parser", [yamldoc._EventParser, yamldoc._PurePyYamlParser], ids=["libyaml", "pure"])
@pytest.mark.parametrize(
    "text, position, message",
    [
        ("a: {: 1}\n", (0, 4), "empty mapping key"),  # YAML 1.2 reads an empty key here, libyaml an error
        ("a:\n  : 1\n", (1, 2), "empty mapping key"),
        ("%YAML 2.0\n---\na: 1\n", (0, 0), "the file asks for a YAML version other than 1.x"),
        ("# c\n%YAML 1.1\n---\na: 1\n", (1, 0), "the file asks for YAML 1.1; kcprov reads YAML 1.2"),
        ("a: 1\n---\nb: 2\n", (1, 0), "a second YAML document ('---') in the file"),
        ("a: *nope\n", (0, 3), "invalid YAML: found undefined alias 'nope'"),
        ("a: &x [*x]\n", (0, 7), "recursive alias"),
        ("a:\n\t- b\n", (1, 0), "tab character in indentation"),
    ],
)
def test_parser_errors_become_kcprov_messages(parser, text, position, message):
    with pytest.raises(YamlIssue) as caught:
        parse(text, parser)
    assert caught.value.position == position and message in caught.value.message


def test_a_redefined_anchor_names_the_latest_and_yaml_1_2_words_stay_text():
    document = parse("a: &x on\nb: &x 0777\nc: *x\nd: [yes, 1.10, 2026-12-01]\n")
    assert document.data == {"a": "on", "b": 777, "c": 777, "d": ["yes", 1.1, "2026-12-01"]}
    assert str(document.data["c"]) == "0777" and str(document.data["d"][1]) == "1.10"
