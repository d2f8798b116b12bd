"""Model-name driven behaviours of the fake upstream, and the small helpers every dialect shares.

A behaviour is chosen by substrings of the requested model (or Azure deployment) name, tensorzero style:
``gpt-4o-mini-error-500`` fails with a 500, ``claude-slow-200-tools`` waits 200 ms and calls a tool,
``gpt-4o-mini-wire-spaced`` writes its answer with spaced JSON (``tests/fake_upstream_wire.py``); for embeddings,
``item-usage`` puts each input's own usage on its data item and ``shuffled`` lists the data in reverse index order.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tests.fake_upstream_wire import DONE, WIRES, Frame

DEFAULT_REPLY = "Hello from the fake upstream."
JSON_REPLY = '{"ok":true}'
TOOL_ARGUMENTS = '{"location":"Paris"}'
TOOL_INPUT = {"location": "Paris"}
STREAM_PIECES = 3
DRIP_PIECES = 20

_ERROR = re.compile(r"error-(\d{3})")
_SLOW = re.compile(r"slow-(\d+)")
_DRIP = re.compile(r"drip-(\d+)")
_WIRE = re.compile(r"wire-(" + "|".join(sorted(WIRES, key=len, reverse=True)) + ")")
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the fake does for one model name."""

    error_status: int | None = None
    overloaded: bool = False
    garbage: bool = False
    flaky: bool = False
    slow_s: float = 0.0
    drip_s: float = 0.0
    midstream_fail: bool = False
    truncated: bool = False
    no_usage: bool = False
    cached: bool = False
    tools: bool = False
    wire: str | None = None
    item_usage: bool = False  # embeddings: every data item carries its own input's usage (some compatible servers)
    shuffled: bool = False  # embeddings: data items in reverse index order (clients must order them by index)

    @property
    def pieces(self) -> int:
        """How many content pieces a stream is cut into."""
        return DRIP_PIECES if self.drip_s else STREAM_PIECES


@lru_cache(maxsize=4096)
def behaviour_for(model: str) -> Behaviour:
    """Parse the behaviour encoded in a model name (cached: names repeat)."""
    error, slow, drip, wire = _ERROR.search(model), _SLOW.search(model), _DRIP.search(model), _WIRE.search(model)
    return Behaviour(
        error_status=int(error.group(1)) if error else None,
        overloaded="overloaded" in model,
        garbage="garbage" in model,
        flaky="flaky" in model,
        slow_s=int(slow.group(1)) / 1000 if slow else 0.0,
        drip_s=int(drip.group(1)) / 1000 if drip else 0.0,
        midstream_fail="midstream-fail" in model,
        truncated="truncated" in model,
        no_usage="no-usage" in model,
        cached="cached" in model,
        tools="tools" in model,
        wire=wire.group(1) if wire else None,
        item_usage="item-usage" in model,
        shuffled="shuffled" in model,
    )


def next_id(prefix: str) -> str:
    """A unique, recognisable object id such as ``chatcmpl-fake1a2``."""
    return f"{prefix}{next(_ids):08x}"


def tokens_for(chars: int) -> int:
    """The fake tokenizer: four characters a token, at least one."""
    return max(1, math.ceil(chars / 4))


def text_of(content: Any) -> str:
    """The text of a message content: a string, a list of text parts/blocks, or nothing."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def chars_of(messages: Any) -> int:
    """Total characters of every message's content."""
    if not isinstance(messages, list):
        return 0
    return sum(len(text_of(message.get("content"))) for message in messages if isinstance(message, dict))


def echo_of(text: str) -> str | None:
    """The text after ``echo:`` (leading spaces dropped), or None when the text is no echo request."""
    return text[5:].lstrip(" ") if text.startswith("echo:") else None


def last_user_text(messages: Any) -> str:
    """The text of the last user message, or an empty string."""
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return text_of(message.get("content"))
    return ""


def split_pieces(text: str, count: int) -> list[str]:
    """Cut text into at most count non-empty pieces of nearly equal size."""
    count = max(1, min(count, len(text)))
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces or [""]


def sse_data(payload: Any) -> Frame:
    """One OpenAI-style SSE frame (rendered on the wire in the layout the fake was asked for)."""
    return None, payload


def sse_event(event: str, payload: Any) -> Frame:
    """One named SSE frame, as Anthropic and the Responses API send them."""
    return event, payload


SSE_DONE: Frame = (None, DONE)


@dataclass(frozen=True, slots=True)
class Stream:
    """The frames of one streamed answer, and how many of them a ``midstream-fail`` (or ``truncated``) model sends
    before aborting the connection (or ending the response cleanly)."""

    frames: list[Frame]
    fail_after: int
