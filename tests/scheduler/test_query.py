import pytest

from hatoba.model.errors import ValidationFailed
from hatoba.scheduler.query import NodeView, parse

NODE = NodeView(
    "node-1",
    {"type": "t2.small", "zone": "us-east-1a", "cores": "8", "ver": "10", "stack": "prod"},
    frozenset({"service:web"}),
    3,
)


def ev(text: str, node: NodeView = NODE) -> bool:
    return parse(text).evaluate(node)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("attribute:type == t2.small", True),
        ("attribute:type equals t2.medium", False),
        ("attribute:type != t2.medium", True),
        ("attribute:cores > 4", True),
        ("attribute:cores >= 8", True),
        ("attribute:cores < 8", False),
        ("attribute:cores <= 8", True),
        ("attribute:stack exists", True),
        ("attribute:gpu exists", False),
        ("attribute:gpu !exists", True),
        ("attribute:zone in [us-east-1a, us-east-1b]", True),
        ("attribute:zone !in [us-east-1a, us-east-1b]", False),
        ("attribute:type =~ t2.*", True),
        ("attribute:type !~ t2.*", False),
        ("attribute:type =~ 'g2.*'", False),
        ("ec2InstanceId in [node-1, node-2]", True),
        ("nodeId == node-2", False),
        ("task:group == service:web", True),
        ("runningTasksCount < 4", True),
        ("attribute:gpu != x", True),  # missing attribute: negated operators hold
    ],
)
def test_every_operator(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_numeric_when_both_numbers_else_lexical() -> None:
    assert ev("attribute:ver > 9")  # 10 > 9 numerically ("10" < "9" lexically)
    assert ev("attribute:zone > us-east-1")  # lexical
    assert not ev("attribute:type > zzz")


def test_and_binds_tighter_than_or_and_parentheses_regroup() -> None:
    assert ev("attribute:type == x or attribute:stack == prod and attribute:cores > 4")
    assert not ev("(attribute:type == x or attribute:stack == prod) and attribute:cores > 9")
    assert ev("attribute:type == x || attribute:cores > 4 && attribute:stack exists")
    assert ev("not (attribute:type == x)")


@pytest.mark.parametrize(
    ("text", "pos", "fragment"),
    [
        ("attribute:type ==", 17, "expected a value"),
        ("attribute:type ~= x", 15, "unknown operator"),
        ("color == red", 0, "unknown subject"),
        ("attribute:a == b and", 20, "end of expression"),
        ("(attribute:a == b", 17, "expected ')'"),
        ("attribute:a in [b, c", 20, "expected ',' or ']'"),
        ("attribute:a in b", 15, "expected '['"),
        ("attribute:a =~ '(x'", 15, "invalid regular expression"),
        ("attribute:a == b c", 17, "expected 'and', 'or'"),
        ("", 0, "empty expression"),
    ],
)
def test_errors_name_field_and_position(text: str, pos: int, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse(text, "placementConstraints[0].expression")
    (e,) = err.value.errors
    assert e.path == "placementConstraints[0].expression"
    assert f"at position {pos}:" in e.message and fragment in e.message
