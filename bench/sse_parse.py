"""Micro-benchmark of relaying an OpenAI chat stream: CPU per SSE event, today's parser against the byte-level one.

Run as ``python -m bench.sse_parse``. Three relays read the same stream, in one event per read (as tokens arrive
when a model generates) and in one read for the whole stream:

* ``bytes``: the removed fast path (byte patterns such as ``"usage":{`` found in compact JSON only; wrong on any
  other layout), kept here as the yardstick;
* ``parsed``: ``OpenAIStream`` (gateway/providers/openai_stream.py): every event parsed as JSON, a chunk carrying
  ``usage`` re-serialised without it when the client did not ask for usage;
* ``parsed, kept``: the same when the client asked for usage, so no chunk is re-serialised.

Each figure is the median (and the fastest) of several rounds, in microseconds per event.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any, cast

import aiohttp
import orjson

from core.config import ModelConfig
from gateway.providers.base import UpstreamCall
from gateway.providers.http import UpstreamHTTP
from gateway.providers.openai_stream import OpenAIStream

ROUNDS = 31
PIECES = 400  # content chunks of a stream of about 400 output tokens
_USAGE_NULL = b',"usage":null'


def compact_stream(pieces: int = PIECES) -> list[bytes]:
    """The events of a compact chat stream as OpenAI writes it for a request that asked for usage."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "service_tier": "default", "system_fingerprint": "fp_bench"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], "usage": None}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": " word"}) for _ in range(pieces)] + [chunk({}, "stop")]
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": pieces,
                                                    "total_tokens": 9 + pieces}})
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def bytes_relay(reads: list[bytes]) -> int:
    """The removed compact-only fast path (openai.py before issue 8), reduced to its per-event work."""
    buffer, out, chars = bytearray(), 0, 0
    for read in reads:
        buffer += read
        end = buffer.rfind(b"\n\n")
        complete = bytes(buffer[: end + 2])
        del buffer[: end + 2]
        for raw in complete.split(b"\n\n"):
            payload = raw[5:].strip()
            if not raw or payload == b"[DONE]":
                continue
            if b'"usage":{' in payload:
                orjson.loads(payload)
                continue
            start = payload.find(b'"content":"')
            if start >= 0:
                chars += max(payload.find(b'"', start + 11) - start - 11, 0)
            out += len(b"data: " + payload.replace(_USAGE_NULL, b"") + b"\n\n")
    return chars


class _Reads:
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = iter(reads)

    async def read_chunk(self, _: object) -> bytes:
        return next(self.reads, b"")


async def parsed_relay(reads: list[bytes], include_usage: bool) -> int:
    """OpenAIStream over prepared reads."""
    model = ModelConfig(name="m", provider="p", upstream="m")
    call = UpstreamCall("chat/completions", {}, model, True, "bench", include_usage)
    stream = OpenAIStream(cast(UpstreamHTTP, _Reads(reads)), cast(aiohttp.ClientResponse, None), call)
    async for _ in stream.events():
        pass
    return stream.completion_chars


def timed(run: Any, events: int) -> str:
    """Median (and fastest) microseconds per event over ROUNDS runs."""
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) / events * 1e6)
    return f"{statistics.median(samples):5.2f} ({min(samples):4.2f})"


def main() -> None:
    """Print µs/event for each relay, per-event reads and whole-stream reads."""
    events = compact_stream()
    loop = asyncio.new_event_loop()
    print(f"{len(events)} events, µs per event: median of {ROUNDS} rounds (fastest)")
    for label, reads in (("one event per read", events), ("whole stream in one read", [b"".join(events)])):
        figures = {
            "bytes": timed(lambda r=reads: bytes_relay(r), len(events)),
            "parsed": timed(lambda r=reads: loop.run_until_complete(parsed_relay(r, False)), len(events)),
            "parsed, kept": timed(lambda r=reads: loop.run_until_complete(parsed_relay(r, True)), len(events)),
        }
        print(f"  {label:26s}" + "  ".join(f"{name} {value}" for name, value in figures.items()))
    loop.close()


if __name__ == "__main__":
    main()
