"""The Messages body a native Claude deployment gets after a middleware changed the request.

The Messages door hands the pipeline the internal call (OpenAI chat's shape), and a middleware
changes that. A Claude deployment is sent Messages, so the change is carried back into the
client's body: the internal call as the door made it and as the middleware left it are both
translated to Messages (``translate.chat_to_messages``), and only what the two translations
disagree on is replaced: a top-level member, in ``messages`` a turn, in a turn a block.
Everything else keeps the client's bytes, Messages-only members (``thinking``, ``top_k``,
``cache_control`` on blocks left as they were) included. Limits are in docs/messages.md.
"""

from __future__ import annotations

import msgspec

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import ChatCompletionRequest
from modelmux.translate.chat_to_messages import chat_to_messages
from modelmux.translate.messages_request import Json


_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
_turns = msgspec.json.Decoder(list[msgspec.Raw])
_encode = msgspec.json.Encoder().encode
_DECIDED = frozenset({"model", "stream"})
"""Members the door and the endpoint profile decide: never taken from a translation."""


def rebuilt_messages_body(body: bytes, before: ChatCompletionRequest,
                          after: ChatCompletionRequest) -> bytes:
    """``body`` (the client's Messages request) with what changed from ``before`` (the internal
    call the door made from it) to ``after`` (the one the middleware left); ``body`` itself
    when the two are equal (a middleware that replaced the request with the same one).

    Raises:
        InvalidRequest: ``after`` holds something a Claude model cannot take (naming it).
    """
    if after == before:
        return body
    new = chat_to_messages(after, model=None)
    try:
        old = chat_to_messages(before, model=None)
    except InvalidRequest:
        old = {}  # nothing to compare with: every member the translation has is replaced
    members = _members.decode(body)
    for name in sorted((old.keys() | new.keys()) - _DECIDED):
        if name in old and old.get(name) == new.get(name):
            continue
        if name not in new:
            members.pop(name, None)
        elif name == "messages" and name in old and name in members:
            members[name] = _changed_turns(members[name], old[name], new[name])
        else:
            members[name] = msgspec.Raw(_encode(new[name]))
    return _encode(members)


def _changed_turns(raw: msgspec.Raw, old: list[Json], new: list[Json]) -> msgspec.Raw:
    """The client's turns with those whose translation changed replaced; all of them when the
    turns do not line up one to one (merged or inserted turns)."""
    turns = _turns.decode(raw)
    if not len(turns) == len(old) == len(new):
        return msgspec.Raw(_encode(new))
    out = [turn if was == now else msgspec.Raw(_encode(_changed_turn(turn, was, now)))
           for turn, was, now in zip(turns, old, new, strict=True)]
    return msgspec.Raw(_encode(out))


def _changed_turn(raw: msgspec.Raw, was: Json, now: Json) -> Json:
    """One turn of the client's with its translation's change: block by block when its blocks
    line up with the translation's (a block keeps members the translation does not have,
    such as ``cache_control``), else the translated turn's content."""
    turn = msgspec.json.decode(raw)
    if not isinstance(turn, dict) or turn.get("role") != now["role"]:
        return now
    content, before, after = turn.get("content"), was["content"], now["content"]
    if isinstance(content, str) and len(after) == 1 and after[0]["type"] == "text":
        turn["content"] = after[0]["text"]
    elif (isinstance(content, list) and len(content) == len(before) == len(after)
          and all(isinstance(block, dict) and block.get("type") == old["type"]
                  for block, old in zip(content, before, strict=True))):
        turn["content"] = [block if old == block_now else _merged(block, old, block_now)
                           for block, old, block_now in zip(content, before, after, strict=True)]
    else:
        turn["content"] = after
    return turn


def _merged(block: Json, old: Json, new: Json) -> Json:
    """``block`` with ``new``'s members; those only the old translation had are removed."""
    kept = {key: value for key, value in block.items() if key not in old or key in new}
    return {**kept, **new}
