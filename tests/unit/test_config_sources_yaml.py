"""parse_yaml turns every malformed text into a problem, never an exception."""

from __future__ import annotations

import pytest

from promenade_core.config.source import parse_yaml


@pytest.mark.parametrize("text", ["\ud800: 1", "a: [", "\x00", "a: " + "[" * 5000])
def test_malformed_text_is_one_problem_and_no_document(text: str) -> None:
    doc, problems = parse_yaml(text)
    assert doc is None and len(problems) == 1
    assert problems[0].message.startswith("YAML syntax error")
