"""The one checker of configs: a value against a schema written as data, errors naming file, key path, value, expected.

A schema node is a dict with a "type": "any", "bool", "int" / "number" ("low", "high": inclusive bounds), "str"
("min_length", "pattern": a regex the whole string matches), "choice" ("of": the values), "list" ("items": a node,
"non_empty"), "mapping" ("keys": {name: node}; "values": the node of any other name, else other names are refused;
"select": {key: {value: {name: node}}}, more keys by the value of one) or "either" ("of": mappings; the one sharing
most keys with the value applies). Any node may say "null": true (None fits), "default" (an absent key takes it,
checked and completed), "optional": true (an absent key stays absent; otherwise an absent key is missing),
"expected" (its description in errors) and "fix" (what to do, after the error).
"""

import copy
import re

TYPE_WORDS = {  # the words of each simple type: one value, several
    "any": ("anything", "anything"),
    "bool": ("true or false", "true or false values"),
    "int": ("an integer", "integers"),
    "number": ("a number", "numbers"),
    "str": ("a string", "strings"),
    "mapping": ("a mapping", "mappings"),
    "either": ("a mapping", "mappings"),
}


def path_name(path: tuple) -> str:
    """A key path in words: its keys and list positions joined by dots (`models.0.kind`)."""
    return ".".join(map(str, path)) or "(top level)"


def error(source: str, path: tuple, problem: str) -> ValueError:
    """The error of one key: `<source>: <key path>: <problem>`."""
    return ValueError(f"{source}: {path_name(path)}: {problem}")


def described(node: dict, many: bool = False) -> str:
    """What a node accepts, in words (of one value, or of several: a list's items)."""
    if "expected" in node:
        text = node["expected"]
    elif node["type"] == "choice":
        text = ("values of " if many else "one of ") + repr(list(node["of"]))
    elif node["type"] == "list":
        items = described(node["items"], many=True)
        text = f"{'non-empty ' if node.get('non_empty') else ''}list{'s' if many else ''} of {items}"
        text = text if many else f"a {text}"
    else:
        text = TYPE_WORDS[node["type"]][many]
        length = node.get("min_length", 0)
        if length == 1:
            text = "non-empty strings" if many else "a non-empty string"
        elif length > 1:
            text += f" of at least {length} characters"
        if "pattern" in node:
            text += f" matching {node['pattern']}"
        if "low" in node and "high" in node:
            text += f" in [{node['low']}, {node['high']}]"
        elif "low" in node or "high" in node:
            text += f" >= {node['low']}" if "low" in node else f" <= {node['high']}"
    return text + (" or null" if node.get("null") and not many else "")


def fix(node: dict) -> str:
    """The end of an error: the node's fix, if it has one."""
    return f"; {node['fix']}" if "fix" in node else ""


def refused(value, node: dict, source: str, path: tuple) -> ValueError:
    """The error of a value that does not fit its node."""
    return error(source, path, f"{value!r} is not {described(node)}{fix(node)}")


def fits(value, node: dict) -> bool:
    """Whether a value that is not None fits a node of a simple type (not a list or a mapping)."""
    kind = node["type"]
    if kind == "any":
        return True
    if kind == "choice":
        return value in node["of"]
    if kind == "str":
        return (
            isinstance(value, str)
            and len(value) >= node.get("min_length", 0)
            and ("pattern" not in node or re.fullmatch(node["pattern"], value) is not None)
        )
    if kind == "bool":
        return isinstance(value, bool)
    number = isinstance(value, int if kind == "int" else int | float) and not isinstance(value, bool)
    return number and node.get("low", value) <= value <= node.get("high", value)


def check(value, node: dict, source: str, path: tuple = ()):
    """`value` checked against the schema `node`, with the defaults of absent keys filled in; ValueError naming
    `source`, the key path (below `path`), the value found and what was expected at the first problem."""
    if value is None and node.get("null"):
        return None
    if node["type"] == "list":
        if not isinstance(value, list) or (node.get("non_empty") and not value):
            raise refused(value, node, source, path)
        return [check(item, node["items"], source, (*path, number)) for number, item in enumerate(value)]
    if node["type"] == "either":
        if not isinstance(value, dict):
            raise refused(value, node, source, path)
        node = max(node["of"], key=lambda option: len(set(option["keys"]) & set(value)))
    if node["type"] == "mapping":
        return checked_mapping(value, node, source, path)
    if not fits(value, node):
        raise refused(value, node, source, path)
    return value


def checked_mapping(value, node: dict, source: str, path: tuple) -> dict:
    """A mapping checked key by key: its selecting keys first, then unknown keys, then each key in schema order."""
    if not isinstance(value, dict):
        raise refused(value, node, source, path)
    keys = dict(node.get("keys", {}))
    for selector, options in node.get("select", {}).items():
        chosen = entry(value, selector, keys[selector], source, path)
        keys |= options.get(chosen, {})
    if "values" not in node:
        for name in value:
            if name not in keys:
                raise error(source, (*path, name), f"unknown key; the keys here are {sorted(keys)}")
    complete = {}
    for name, key in keys.items():
        if name in value or "default" in key or not key.get("optional"):
            complete[name] = entry(value, name, key, source, path)
    for name in [name for name in value if name not in keys]:
        complete[name] = check(value[name], node["values"], source, (*path, name))
    return complete


def entry(mapping: dict, name, node: dict, source: str, path: tuple):
    """The checked value of one key of a mapping: the value given, else its default, else a missing key's error."""
    if name in mapping:
        return check(mapping[name], node, source, (*path, name))
    if "default" in node:
        return check(copy.deepcopy(node["default"]), node, source, (*path, name))
    raise error(source, (*path, name), f"missing; expected {described(node)}{fix(node)}")
