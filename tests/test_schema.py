"""lib.schema: each node type's values, defaults filled in, selected and alternative keys, and errors that name the
source, the key path, the value found, what was expected and the fix."""

import pytest

from lib import schema

SHAPE = {
    "type": "mapping",
    "keys": {"kind": {"type": "choice", "of": ["circle", "box"]}, "colour": {"type": "str", "default": "red"}},
    "select": {
        "kind": {
            "circle": {"radius": {"type": "number", "low": 0.0}},
            "box": {"sides": {"type": "list", "items": {"type": "int", "low": 1}, "non_empty": True}},
        }
    },
}
DRAWING = {
    "type": "mapping",
    "keys": {
        "name": {"type": "str", "min_length": 1},
        "size": {
            "type": "mapping",
            "default": {},
            "keys": {"width": {"type": "int", "default": 640}, "height": {"type": "int", "default": 480}},
        },
        "shapes": {"type": "mapping", "values": SHAPE, "default": {}},
        "grid": {"type": "bool", "optional": True, "fix": "e.g. `grid: true`"},
        "scale": {"type": "number", "low": 0.5, "high": 2.0, "null": True, "default": None},
        "layer": {
            "type": "either",
            "optional": True,
            "of": [
                {"type": "mapping", "keys": {"file": {"type": "str", "pattern": "[a-z]+[.]png"}}},
                {"type": "mapping", "keys": {"fill": {"type": "any"}, "opacity": {"type": "number"}}},
            ],
        },
    },
}


def test_defaults_are_filled_in_and_a_complete_value_checks_to_itself():
    complete = schema.check({"name": "a", "shapes": {"s": {"kind": "circle", "radius": 2}}}, DRAWING, "d.yaml")
    assert complete == {
        "name": "a",
        "size": {"width": 640, "height": 480},
        "shapes": {"s": {"kind": "circle", "colour": "red", "radius": 2}},
        "scale": None,
    }
    assert schema.check(complete, DRAWING, "d.yaml") == complete
    assert schema.check({"name": "a", "size": {"height": 10}}, DRAWING, "d.yaml")["size"] == {
        "width": 640,
        "height": 10,
    }


def test_optional_keys_stay_absent_and_the_alternative_sharing_most_keys_applies():
    complete = schema.check({"name": "a", "layer": {"fill": [1], "opacity": 0.5}}, DRAWING, "d.yaml")
    assert "grid" not in complete and complete["layer"] == {"fill": [1], "opacity": 0.5}
    assert schema.check({"name": "a", "layer": {"file": "x.png"}}, DRAWING, "d.yaml")["layer"] == {"file": "x.png"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "colour: unknown key; the keys here are ['grid', 'layer', 'name', 'scale', 'shapes', 'size']"),
        ({"name": ""}, "name: '' is not a non-empty string"),
        ({"name": None}, "name: None is not a non-empty string"),
        ({"size": {"width": 2.5}}, "size.width: 2.5 is not an integer"),
        ({"size": {"width": True}}, "size.width: True is not an integer"),
        ({"size": []}, "size: [] is not a mapping"),
        ({"grid": "yes"}, "grid: 'yes' is not true or false; e.g. `grid: true`"),
        ({"scale": 3}, "scale: 3 is not a number in [0.5, 2.0] or null"),
        ({"scale": "1"}, "scale: '1' is not a number in [0.5, 2.0] or null"),
        ({"shapes": {"s": {"kind": "star"}}}, "shapes.s.kind: 'star' is not one of ['circle', 'box']"),
        ({"shapes": {"s": {"colour": "blue"}}}, "shapes.s.kind: missing; expected one of ['circle', 'box']"),
        ({"shapes": {"s": {"kind": "circle"}}}, "shapes.s.radius: missing; expected a number >= 0.0"),
        ({"shapes": {"s": {"kind": "circle", "radius": -1}}}, "shapes.s.radius: -1 is not a number >= 0.0"),
        ({"shapes": {"s": {"kind": "circle", "radius": 1, "sides": [1]}}}, "shapes.s.sides: unknown key; the keys"),
        (
            {"shapes": {"s": {"kind": "box", "sides": []}}},
            "shapes.s.sides: [] is not a non-empty list of integers >= 1",
        ),
        ({"shapes": {"s": {"kind": "box", "sides": [3, 0]}}}, "shapes.s.sides.1: 0 is not an integer >= 1"),
        ({"layer": {"file": "x.jpg"}}, "layer.file: 'x.jpg' is not a string matching [a-z]+[.]png"),
        ({"layer": {"fill": 1, "opacity": "half"}}, "layer.opacity: 'half' is not a number"),
        ({"layer": 3}, "layer: 3 is not a mapping"),
    ],
)
def test_errors_name_the_source_the_key_path_the_value_and_what_was_expected(change, message):
    with pytest.raises(ValueError) as error:
        schema.check({"name": "a"} | change, DRAWING, "d.yaml")
    assert str(error.value).startswith(f"d.yaml: {message}")


def test_a_missing_required_key_and_a_wrong_top_level_are_named():
    with pytest.raises(ValueError, match=r"^d.yaml: name: missing; expected a non-empty string$"):
        schema.check({}, DRAWING, "d.yaml")
    with pytest.raises(ValueError, match=r"^d.yaml: \(top level\): \[1\] is not a mapping$"):
        schema.check([1], DRAWING, "d.yaml")
    with pytest.raises(ValueError, match=r"^plan.json: pair_stage.name: missing"):
        schema.check({}, DRAWING, "plan.json", ("pair_stage",))


def test_an_error_of_a_rule_beyond_the_schema_has_the_same_form():
    assert str(schema.error("d.yaml", ("shapes", "s", 0), "too big")) == "d.yaml: shapes.s.0: too big"
    assert str(schema.error("d.yaml", (), "empty")) == "d.yaml: (top level): empty"
