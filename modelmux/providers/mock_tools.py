"""What the ``mock`` provider answers: text or a tool call, how many choices, which arguments.

Follows OpenAI's "Chat > Create chat completion" rules for ``tool_choice`` and ``n``; the
arguments of a call are a deterministic example of the function's JSON schema. Pure: the
rendering of answers and chunks is ``providers.mock``'s job.
"""

from __future__ import annotations

from typing import Any

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import (
    ChatCompletionRequest,
    FunctionDef,
    NamedToolChoice,
    ToolMessage,
)

MAX_CHOICES = 128
"""OpenAI's own bound on ``n``."""

WORD = "mock"
"""The value of every string argument with no enum, const or default."""

_MAX_DEPTH = 32
_MAX_VALUES = 10_000
_MAX_ITEMS = 16
_ANY: dict[str, Any] = {}
_CHOICE_MODES = ("none", "auto", "required")


def choice_count(request: ChatCompletionRequest) -> int:
    """How many choices to answer: ``n``, 1 when absent.

    Raises:
        InvalidRequest: ``n`` is below 1 or above 128.
    """
    n = 1 if request.n is None else request.n
    if not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"n must be between 1 and {MAX_CHOICES}, got {n}.", param="n",
                             code="invalid_value")
    return n


def tool_to_call(request: ChatCompletionRequest) -> FunctionDef | None:
    """The function the mock calls, or None to answer text.

    A function named by ``tool_choice`` or any under ``"required"`` is always called; under
    ``"auto"`` (the default with tools) the first tool is called unless the last message is a
    ``tool`` result, which gets text so a client's tool loop ends.

    Raises:
        InvalidRequest: ``tool_choice`` is unknown, names a function not in ``tools``, or
            requires a tool when there is none.
    """
    functions = [tool.function for tool in request.tools or ()
                 if tool.type == "function" and tool.function is not None]
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        named = next((f for f in functions if f.name == choice.function.name), None)
        if choice.type != "function" or named is None:
            raise InvalidRequest(
                f"tool_choice names the function {choice.function.name!r}, which is not in tools.",
                param="tool_choice.function.name", code="invalid_value")
        return named
    if choice is not None and choice not in _CHOICE_MODES:
        raise InvalidRequest(
            f"tool_choice must be one of {', '.join(_CHOICE_MODES)} or a named function, "
            f"got {choice!r}.", param="tool_choice", code="invalid_value")
    if choice == "required" and not functions:
        raise InvalidRequest("tool_choice 'required' needs at least one function in tools.",
                             param="tool_choice", code="invalid_value")
    if choice == "none" or not functions:
        return None
    if choice != "required" and request.messages and isinstance(request.messages[-1], ToolMessage):
        return None
    return functions[0]


def example_arguments(schema: dict[str, Any] | None) -> dict[str, Any]:
    """Deterministic arguments for a function whose parameters are ``schema``.

    Each required property gets its ``default``, ``const`` or first ``enum`` value, else by
    type: ``"mock"``, 0 (or ``minimum``), false, ``minItems`` (at most 16) examples of
    ``items``, an object built the same way. ``$ref`` to ``#/$defs/…`` or ``#/definitions/…``
    is followed. Depth and the number of values are bounded, so a recursive schema cannot make
    it spin.
    """
    value = _Sampler(schema or {}).example(schema or {}, 0)
    return value if isinstance(value, dict) else {}


class _Sampler:
    """One walk over a schema, with its root for ``$ref`` and a budget of values."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.budget = _MAX_VALUES

    def example(self, schema: Any, depth: int) -> Any:
        self.budget -= 1
        if not isinstance(schema, dict) or depth > _MAX_DEPTH or self.budget < 0:
            return None
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self.example(_resolve(ref, self.root), depth + 1)
        for key in ("default", "const"):
            if key in schema:
                return schema[key]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf", "allOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.example(options[0], depth + 1)
        kind = _type_of(schema)
        if kind == "object":
            properties = schema.get("properties")
            properties = properties if isinstance(properties, dict) else {}
            required = schema.get("required")
            names = required if isinstance(required, list) else []
            return {name: self.example(properties.get(name, _ANY), depth + 1)
                    for name in names if isinstance(name, str)}
        if kind == "array":
            count = schema.get("minItems")
            count = min(count, _MAX_ITEMS) if isinstance(count, int) and count > 0 else 0
            return [self.example(schema.get("items", _ANY), depth + 1) for _ in range(count)]
        if kind in ("integer", "number"):
            least = schema.get("minimum")
            return least if isinstance(least, (int, float)) and not isinstance(least, bool) else 0
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return WORD


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    """The schema a local ``$ref`` points at; None for anything else."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
