"""How the fake provider writes JSON and SSE on the wire: every layout real servers use, all of it valid SSE.

``compact``    orjson, ``\\n`` line ends, the whole stream in one write (what OpenAI's own servers send).
``spaced``     ``json.dumps`` defaults (``", "`` and ``": "``, non-ASCII escaped) with keys in reverse order, as
               servers written in Python send it.
``multiline``  pretty-printed JSON, one ``data:`` line per JSON line (SSE joins them with ``\\n``), comment lines and
               a keep-alive comment block before the first event.
``crlf``       compact JSON, ``\\r\\n`` line ends.
``cr``         compact JSON, bare ``\\r`` line ends (allowed by the SSE spec, rare in practice).
``split``      spaced JSON with raw UTF-8 and ``\\r\\n`` line ends, each event cut into several TCP writes with short
               pauses: inside ``data:``, between ``\\r`` and ``\\n``, inside a multi-byte character.

Chosen by ``FakeUpstream(wire=...)``, ``--wire`` on the command line, or ``wire-<name>`` in the model name.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import orjson

WIRES = ("compact", "spaced", "multiline", "crlf", "cr", "split")
DONE = b"[DONE]"
SPLIT_PAUSE_S = 0.001  # long enough for the reader to see each piece as a read of its own, most of the time

Frame = tuple[str | None, Any]  # (event name or None, JSON payload or raw bytes such as DONE)


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(value)}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Wire:
    """One way of laying JSON and SSE out on the wire."""

    name: str
    spaced: bool = False
    ascii: bool = True
    multiline: bool = False
    newline: bytes = b"\n"
    split: bool = False

    def json(self, payload: Any) -> bytes:
        """A JSON document in this layout."""
        if self.multiline:
            return json.dumps(payload, indent=2, ensure_ascii=self.ascii).encode()
        if self.spaced:
            return json.dumps(_reversed_keys(payload), ensure_ascii=self.ascii).encode()
        return orjson.dumps(payload)

    def frame(self, frame: Frame) -> bytes:
        """One SSE event, blank line included."""
        event, payload = frame
        data = payload if isinstance(payload, bytes) else self.json(payload)
        lines = [b": fake upstream"] if self.multiline else []
        if event is not None:
            lines.append(b"event: " + event.encode())
        lines += [b"data: " + line for line in data.split(b"\n")]
        return self.newline.join(lines) + self.newline * 2

    def body(self, frames: list[Frame]) -> list[bytes]:
        """Every event of a stream, rendered (a keep-alive comment block first in the multi-line layout)."""
        rendered = [self.frame(frame) for frame in frames]
        return [b": keep-alive" + self.newline * 2, *rendered] if self.multiline else rendered

    def writes(self, rendered: bytes) -> list[bytes]:
        """How one rendered event is cut into separate writes."""
        if not self.split:
            return [rendered]
        # Inside the first field name, inside "data:", and between a CR and its LF.
        cuts = {2, rendered.find(b"data:") + 3, rendered.find(b"\r\n") + 1}
        multibyte = next((index for index, byte in enumerate(rendered) if byte >= 0xC0), -1)
        cuts.add(multibyte + 1)  # after the first byte of a multi-byte character
        edges = [0, *sorted(cut for cut in cuts if 0 < cut < len(rendered)), len(rendered)]
        return [rendered[start:end] for start, end in itertools.pairwise(edges)]


WIRE_TABLE = {
    "compact": Wire("compact"),
    "spaced": Wire("spaced", spaced=True),
    "multiline": Wire("multiline", multiline=True, ascii=False),
    "crlf": Wire("crlf", newline=b"\r\n"),
    "cr": Wire("cr", newline=b"\r"),
    "split": Wire("split", spaced=True, ascii=False, newline=b"\r\n", split=True),
}


def wire_named(name: str) -> Wire:
    """The layout of a name in WIRES."""
    try:
        return WIRE_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown wire format {name!r}; choose one of {', '.join(WIRES)}") from None
