"""One compute-capability value: every spelling parses to it, and it compares as numbers."""

from __future__ import annotations

import pytest

from envsetup.detect.overrides import normalise_capabilities
from envsetup.model.capability import ComputeCapability


@pytest.mark.parametrize("text", ["8.6", "86", "sm_86", "SM86", " 8.6 "])
def test_every_spelling_is_the_same_value(text: str) -> None:
    assert ComputeCapability.parse(text) == ComputeCapability(8, 6)
    assert str(ComputeCapability.parse(text)) == "8.6"
    assert ComputeCapability.parse(text).arch == "sm_86"


@pytest.mark.parametrize("text", ["", "eight", "8.", "8.6.1", "sm_", "\u0668.\u0666", "123.4"])
def test_anything_else_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a compute capability"):
        ComputeCapability.parse(text)


def test_order_is_numeric_where_text_order_is_not() -> None:
    assert "10.0" < "8.6"  # the bug a string invites
    assert ComputeCapability.parse("10.0") > ComputeCapability.parse("8.6")
    assert ComputeCapability.parse("12.0") > ComputeCapability.parse("9.0")
    assert sorted(map(ComputeCapability.parse, ["9.0", "12.0", "7.5"])) == [
        ComputeCapability(7, 5),
        ComputeCapability(9, 0),
        ComputeCapability(12, 0),
    ]


def test_overrides_read_capabilities_by_the_same_rule() -> None:
    assert normalise_capabilities("sm_86, 9.0 120") == ("8.6", "9.0", "12.0")
    with pytest.raises(ValueError):
        normalise_capabilities("8.6,eight")
