"""msgspec Structs for the OpenAI Chat Completions wire format (requests, responses, chunks).

Reference: OpenAI API reference, "Chat > Create chat completion" and "The chat completion chunk
object". Request decoding validates types and names the offending field; fields a provider does
not know are ignored here (the original body is what an OpenAI-format upstream receives).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

# Content parts (tagged by "type") -------------------------------------------------------------


class TextPart(Struct, tag_field="type", tag="text", omit_defaults=True):
    text: str


class ImageURL(Struct, omit_defaults=True):
    url: str
    detail: str | None = None


class ImagePart(Struct, tag_field="type", tag="image_url", omit_defaults=True):
    image_url: ImageURL


class InputAudio(Struct):
    data: str
    format: str


class AudioPart(Struct, tag_field="type", tag="input_audio"):
    input_audio: InputAudio


class FileRef(Struct, omit_defaults=True):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(Struct, tag_field="type", tag="file"):
    file: FileRef


class RefusalPart(Struct, tag_field="type", tag="refusal"):
    refusal: str


UserPart = TextPart | ImagePart | AudioPart | FilePart
AssistantPart = TextPart | RefusalPart


# Tool calls ------------------------------------------------------------------------------------


class FunctionCall(Struct):
    name: str
    arguments: str


class ToolCall(Struct):
    id: str
    function: FunctionCall
    type: str = "function"


# Messages (tagged by "role") ---------------------------------------------------------------------


class SystemMessage(Struct, tag_field="role", tag="system", omit_defaults=True):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(Struct, tag_field="role", tag="developer", omit_defaults=True):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(Struct, tag_field="role", tag="user", omit_defaults=True):
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(Struct, tag_field="role", tag="assistant", omit_defaults=True):
    content: str | list[AssistantPart] | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    name: str | None = None
    function_call: FunctionCall | None = None


class ToolMessage(Struct, tag_field="role", tag="tool", omit_defaults=True):
    content: str | list[TextPart]
    tool_call_id: str


class FunctionMessage(Struct, tag_field="role", tag="function", omit_defaults=True):
    name: str
    content: str | None = None


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage


# Tools and options -------------------------------------------------------------------------------


class FunctionDef(Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Struct, omit_defaults=True):
    type: str
    function: FunctionDef | None = None


class NamedFunction(Struct):
    name: str


class NamedToolChoice(Struct):
    type: str
    function: NamedFunction


class StreamOptions(Struct, omit_defaults=True):
    include_usage: bool | None = None


class JSONSchemaFormat(Struct, omit_defaults=True):
    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class ChatCompletionRequest(Struct, omit_defaults=True):
    """The request body of ``POST /v1/chat/completions``."""

    model: str
    messages: list[Message]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: str | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, str] | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None
    store: bool | None = None
    # Declared so a translator can reject what it cannot honour instead of never seeing it.
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[FunctionDef] | None = None
    function_call: str | NamedFunction | None = None


# Responses ---------------------------------------------------------------------------------------


class Usage(Struct, omit_defaults=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, int] | None = None
    completion_tokens_details: dict[str, int] | None = None


class ResponseMessage(Struct):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class Choice(Struct):
    index: int
    message: ResponseMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(Struct):
    """The non-streaming response object (``object = "chat.completion"``)."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    object: str = "chat.completion"
    system_fingerprint: str | None = None


class FunctionCallDelta(Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(Struct, omit_defaults=True):
    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class Delta(Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    refusal: str | None = None


class ChunkChoice(Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(Struct):
    """One streamed chunk (``object = "chat.completion.chunk"``)."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: str = "chat.completion.chunk"
    usage: Usage | None = None


request_decoder = msgspec.json.Decoder(ChatCompletionRequest)
