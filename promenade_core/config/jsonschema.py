"""The JSON Schema of promenade.yaml (draft 2020-12), for editors and other tools.

Built from the marshmallow schemas the validator uses (schema.py): each section's
fields, each field's class mapped to a JSON Schema type, each field's `metadata`
description, the same name patterns, so the schema and the validator cannot drift
apart. A field class, or a check function on a text field, with no mapping here is an
error (`NoMapping`), not a silently loose schema: adding one to fields.py means saying
here what it accepts. `promenade config schema` prints the result; the package ships
it as promenade.schema.json, and a test keeps the file equal to a fresh build.

The schema describes the file as written, before `${VAR}` interpolation: wherever a
string could become a valid value once interpolated (numbers, booleans, choices, text
with a shape), a string containing `${` is accepted too. What it cannot say, the
validator still checks (ports unique, depends_on naming known services, a float such
as `5.0` where a whole number is due).

It declares draft 2020-12 but uses only keywords draft-07 has (if/then, const,
propertyNames, boolean schemas; no $defs, prefixItems or unevaluated*), because the
YAML language server behind most editors implements draft-07.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from promenade_core.config.choices import AUTO_PORT, Condition, ReadyType, StopSignal, words
from promenade_core.config.fields import (
    ENV_NAME,
    SERVICE_NAME,
    Choice,
    Count,
    DependsOn,
    EnvMap,
    Flag,
    LogFilesField,
    Pattern,
    Port,
    Seconds,
    ServicePort,
    StopSignalChoice,
    Text,
    TextList,
    absolute_problem,
    bus_tcp_problem,
    origin_problem,
    profile_problem,
    url_path_problem,
)
from promenade_core.config.marshmallow_lazy import Schema, fields
from promenade_core.config.schema import (
    LOG_REFUSES,
    READY_NEEDS,
    READY_OWN_KEYS,
    READY_TYPED_KEYS,
    DefaultsSchema,
    ManagerSchema,
    ReadyCheckSchema,
    Section,
    ServiceSchema,
)
from promenade_core.config.source import Path_, keep_text
from promenade_core.router.names import domain_problem
from promenade_hostsd.hostnames import MAX_LABEL, MAX_NAME, hostname_problem

Json = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:promenade:schema:promenade.yaml"
OVERRIDE_ID = "urn:promenade:schema:promenade.override.yaml"
#: beside this module, in the package: the schema, then the override files' one
SHIPPED_FILE = "promenade.schema.json"
SHIPPED_OVERRIDE_FILE = "promenade.override.schema.json"

NOT_BLANK = r"\S"
#: A string with a `${` that is not escaped as `$${`: interpolation may turn it into a
#: number, a boolean or a word of a choice, so it is accepted wherever those are.
INTERPOLATED: Json = {"type": "string", "pattern": r"(?:^|[^$])(?:\$\$)*\$\{"}
X_KEYS = "^x-"
PORT: Json = {"type": "integer", "minimum": 1, "maximum": 65535}


class NoMapping(Exception):
    """A field of fields.py that this module cannot express (a new class or check)."""


def _whole(pattern: re.Pattern[str] | str) -> str:
    """A fullmatch pattern of fields.py as a JSON Schema one (which searches)."""
    text = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    return f"^(?:{text})$"


def _any_case(word: str) -> str:
    """`[Tt][Ee][Rr][Mm]`: JSON Schema patterns (ECMA 262) have no inline (?i)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
#: Patterns for the check functions text fields carry, each accepting what the
#: function accepts (a test compares them on samples).
CHECK_PATTERNS: Mapping[Callable[[str], str | None], str] = {
    url_path_problem: r"^/[^\s\x00-\x1f\x7f]*$",
    absolute_problem: "^/",
    bus_tcp_problem: r"^(?:127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\]|::1):[0-9]{1,5}$",
    origin_problem: (
        r"^(?:\*|[Hh][Tt][Tt][Pp][Ss]?://(?:\[[0-9A-Fa-f:.]+\]|[^\s\x00-\x1f\x7f/?#@:\[\]]+)"
        r"(?::[0-9]{1,5})?)$"
    ),
    profile_problem: _whole(SERVICE_NAME),
    hostname_problem: (
        rf"^(?=.{{1,{MAX_NAME}}}$)(?!{_any_case('localhost')}$)(?!(?:.*\.)?[0-9]+$)"
        rf"(?:(?=[^.]{{1,{MAX_LABEL}}}(?:\.|$)){_LABEL}\.)*(?=[^.]{{1,{MAX_LABEL}}}$){_LABEL}$"
    ),
    domain_problem: (
        rf"^(?=.{{1,{MAX_NAME}}}$)(?:(?=[^.]{{1,{MAX_LABEL}}}\.){_LABEL}\.)+"
        rf"(?![0-9]+$)(?=[^.]{{1,{MAX_LABEL}}}$){_LABEL}$"
    ),
}


#: A scalar the loader keeps as typed text (source.keep_text): `command: true` runs
#: `true`, `VERSION: 1.10` stays "1.10".
AS_TYPED: Json = {"type": ["number", "boolean"]}


def _string(check: Callable[[str], str | None] | None) -> Json:
    """Text: not blank; with a check, its pattern, or a `${` to be interpolated."""
    if check is None:
        return {"type": "string", "pattern": NOT_BLANK}
    if check not in CHECK_PATTERNS:
        raise NoMapping(f"no JSON Schema pattern for the check {check.__name__}")
    return {"type": "string", "anyOf": [
        {"pattern": CHECK_PATTERNS[check]}, {"pattern": INTERPOLATED["pattern"]}]}


def _text(field: Text, path: Path_) -> Json:
    if keep_text(path):
        return {"anyOf": [_string(field.extra), AS_TYPED]}
    return _string(field.extra)


def _choice(field: Choice, path: Path_) -> Json:
    return {"anyOf": [{"type": "string", "enum": list(field.choices)}, INTERPOLATED]}


def _stop_signal(field: StopSignalChoice, path: Path_) -> Json:
    """Any case, with or without SIG; the enum lists the usual spelling for completion."""
    names = "|".join(_any_case(word) for word in words(StopSignal))
    return {"anyOf": [
        {"type": "string", "enum": list(field.choices)},
        {"type": "string", "pattern": f"^(?:{_any_case('SIG')})?(?:{names})$"},
        INTERPOLATED,
    ]}


def _text_list(field: TextList, path: Path_) -> Json:
    item = _string(field.item)
    return {"anyOf": [item, {"type": "array", "items": item}]}


def _env_map(field: EnvMap, path: Path_) -> Json:
    value: Json = {"type": "string"}
    if keep_text((*path, "NAME")):
        value = {"type": ["string", "number", "boolean"]}
    return {
        "type": "object",
        "propertyNames": {"pattern": _whole(ENV_NAME)},
        "additionalProperties": value,
    }


def _depends_on(field: DependsOn, path: Path_) -> Json:
    name = _string(None)
    word = {"description": field.condition_description, **_choice(Choice(Condition), path)}
    condition = {"type": "object", "required": ["condition"], "additionalProperties": False,
                 "properties": {"condition": word}}
    return {"anyOf": [
        name,
        {"type": "array", "items": name},
        {"type": "object", "propertyNames": {"pattern": _whole(SERVICE_NAME)},
         "additionalProperties": condition},
    ]}


def _nested(field: fields.Nested, path: Path_) -> Json:
    schema = field.schema
    if not isinstance(schema, Section):
        raise NoMapping(f"nested {type(schema).__name__} is not a config section")
    return section(type(schema), path)


def _number(schema: Json) -> Callable[[Any, Path_], Json]:
    """Numbers and booleans: the YAML value, or a string to be interpolated."""
    return lambda field, path: {"anyOf": [schema, INTERPOLATED]}


def _log_files(field: Any, path: Path_) -> Json:
    """`false`, `true` or `{max_bytes, keep}` (LogFilesField)."""
    return {"anyOf": [
        {"type": "boolean"}, INTERPOLATED,
        {"type": "object", "additionalProperties": False, "properties": {
            "max_bytes": {"description": "rotate a file before it grows past this many bytes "
                                         f"(at least {field.MIN_BYTES})",
                          "anyOf": [{"type": "integer", "minimum": field.MIN_BYTES},
                                    INTERPOLATED]},
            "keep": {"description": "how many rotated files to keep beside the current one",
                     "anyOf": [{"type": "integer", "minimum": 0}, INTERPOLATED]}}},
    ]}


def _service_port(field: ServicePort, path: Path_) -> Json:
    """A service's port: a number, or the word auto."""
    return {"anyOf": [PORT, {"type": "string", "const": AUTO_PORT}, INTERPOLATED]}


#: Each field class of fields.py, exactly (a subclass needs its own entry), to a
#: function of the field and its key path giving its JSON Schema.
FIELD_MAPPERS: Mapping[type[fields.Field], Callable[[Any, Path_], Json]] = {
    Text: _text,
    Pattern: _text,
    Choice: _choice,
    StopSignalChoice: _stop_signal,
    Port: _number(PORT),
    ServicePort: _service_port,
    Count: _number({"type": "integer", "minimum": 1}),
    Seconds: _number({"type": "number", "exclusiveMinimum": 0}),
    Flag: _number({"type": "boolean"}),
    TextList: _text_list,
    EnvMap: _env_map,
    DependsOn: _depends_on,
    LogFilesField: _log_files,
    fields.Nested: _nested,
}


def field_schema(name: str, field: fields.Field, at: Path_ = ()) -> Json:
    """One key's JSON Schema: its class's mapping, its description, null if allowed;
    `at` is the path of its section (`("services", "NAME")`)."""
    mapper = FIELD_MAPPERS.get(type(field))
    if mapper is None:
        raise NoMapping(f"no JSON Schema mapping for the field class {type(field).__name__}")
    description = field.metadata.get("description")
    if not description:
        raise NoMapping(f"field {name!r} has no description in its metadata")
    schema = mapper(field, (*at, name))
    return {"description": description, **(_or_null(schema) if field.allow_none else schema)}


def _or_null(schema: Json) -> Json:
    """`key: null` (or nothing after the colon), which the loader treats as unset."""
    if set(schema) == {"anyOf"}:
        return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}


def section(schema_class: type[Section], at: Path_) -> Json:
    """A mapping of settings: its fields, nothing else (unknown keys are refused)."""
    if not schema_class.description:
        raise NoMapping(f"section {schema_class.__name__} has no description")
    declared = schema_class().fields
    result: Json = {
        "type": "object",
        "description": schema_class.description,
        "additionalProperties": False,
        "properties": {name: field_schema(name, f, at) for name, f in declared.items()},
    }
    required = [name for name, f in declared.items() if f.required]
    if required:
        result["required"] = required
    rules = SECTION_RULES.get(schema_class)
    if rules:
        result["allOf"] = rules()
    return result


def _ready_check_rules() -> list[Json]:
    """ReadyCheckSchema's per-type rules as if/then: a type's required key, and the
    keys of other types (and log's refused ones) forbidden."""
    rules = []
    for kind in ReadyType:
        refused = [key for key in READY_TYPED_KEYS if key not in READY_OWN_KEYS[kind]]
        if kind == ReadyType.LOG:
            refused += LOG_REFUSES
        then: Json = {"properties": {key: False for key in refused}}
        if kind in READY_NEEDS:
            then["required"] = [READY_NEEDS[kind]]
        rules.append({
            "if": {"properties": {"type": {"const": str(kind)}}, "required": ["type"]},
            "then": then,
        })
    return rules


SECTION_RULES: Mapping[type[Schema], Callable[[], list[Json]]] = {
    ReadyCheckSchema: _ready_check_rules,
}


def _nullable(schema: Json) -> Json:
    """A section that may be empty (`manager:` with nothing under it)."""
    return {"description": schema["description"], **_or_null(schema)}


def config_schema() -> Json:
    """The whole document: `manager`, `defaults`, `services` and `x-*` keys."""
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "$comment": "Generated by `promenade config schema` from "
                    "promenade_core/config/schema.py; do not edit by hand.",
        "title": "promenade.yaml",
        "description": "Promenade's config: the services of a local development project "
                       "and how to run them.",
        "type": "object",
        "required": ["services"],
        "additionalProperties": False,
        "properties": {
            "manager": _nullable(section(ManagerSchema, ("manager",))),
            "defaults": _nullable(section(DefaultsSchema, ("defaults",))),
            "services": {
                "type": "object",
                "description": "Service names (letters, digits, _ and -) mapped to their "
                               "settings; at least one.",
                "minProperties": 1,
                "propertyNames": {"pattern": _whole(SERVICE_NAME)},
                "additionalProperties": section(ServiceSchema, ("services", "NAME")),
            },
        },
        "patternProperties": {
            X_KEYS: {"description": "Ignored by Promenade: a place for YAML anchors "
                                    "shared by several services."},
        },
    }


def override_schema() -> Json:
    """For promenade.override.yaml (and later `-c` files): the same keys and types, none
    required, since such a file holds only what it changes and is merged key by key
    onto the first (a service's `command` is usually in the first file)."""
    schema = _without_required(config_schema())
    schema.update({
        "$id": OVERRIDE_ID,
        "$comment": "Generated by `promenade config schema --override` from "
                    "promenade_core/config/schema.py; do not edit by hand.",
        "title": "promenade.override.yaml",
        "description": "Changes merged on top of promenade.yaml: mappings merge key by "
                       "key, lists and other values replace.",
    })
    return schema


def _without_required(node: Any) -> Any:
    """Drop `required` and `minProperties`, but not inside an `if` (where `required`
    is part of the test, not a demand)."""
    if isinstance(node, list):
        return [_without_required(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: value if key == "if" else _without_required(value)
            for key, value in node.items() if key not in ("required", "minProperties")}


def render(override: bool = False) -> str:
    """The schema as the shipped file holds it (and `promenade config schema` prints)."""
    return json.dumps(override_schema() if override else config_schema(), indent=2) + "\n"
