"""Server-sent events: an incremental parser for providers' streams (LF, CRLF or CR line ends) and the re-framing."""

from __future__ import annotations

KEEP_ALIVE = ":"  # the name parse_sse(comments=True) gives a block of comment lines only (a provider's keep-alive)
KEEP_ALIVE_EVENT = b":\n\n"


def parse_sse(buffer: bytearray, *, comments: bool = False) -> list[tuple[str, bytes]]:
    """Consume every complete SSE event in `buffer` (deleting its bytes); return (event name, data) pairs.

    Data lines are joined with "\\n" as the SSE spec says. With `comments`, a block holding only comment lines is
    returned as (KEEP_ALIVE, b"") so that a relay can pass keep-alives on; otherwise comments are dropped.
    """
    if b"\r" in buffer:
        return _parse_lines(buffer, comments)
    # LF line ends only (nearly every provider): an event is what lies between blank lines, i.e. "\n\n".
    end = buffer.rfind(b"\n\n")
    if end < 0:
        return []
    blocks = bytes(buffer[:end]).split(b"\n\n")
    del buffer[: end + 2]  # an event still arriving stays in the buffer and is read next time
    events = []
    for block in blocks:
        if block.startswith(b"data: ") and b"\n" not in block:
            events.append(("message", block[6:]))  # the common one-line data event, as the spec would read it
        elif (event := _read_block(block.split(b"\n"), comments)) is not None:
            events.append(event)
    return events


def _read_block(lines: list[bytes], comments: bool) -> tuple[str, bytes] | None:
    """The event of one block of lines (blank ones skipped), or None when it dispatches nothing."""
    name, noted = "", False
    data: list[bytes] = []
    for line in lines:
        if line:
            noted = noted or (comments and line.startswith(b":"))
            name = _read_field(line, name, data)
    if data:
        return name or "message", b"\n".join(data)
    return (KEEP_ALIVE, b"") if noted else None


def _parse_lines(buffer: bytearray, comments: bool) -> list[tuple[str, bytes]]:
    """parse_sse for buffers with CR or CRLF line ends: line by line, an event dispatched at each blank line."""
    events: list[tuple[str, bytes]] = []
    lines: list[bytes] = []
    start, consumed = 0, 0
    while (line := _next_line(buffer, start)) is not None:
        end, after = line
        if end > start:
            lines.append(bytes(buffer[start:end]))
        else:  # a blank line ends the event
            if (event := _read_block(lines, comments)) is not None:
                events.append(event)
            # A CR that ends the buffer may be half of a CRLF: keep it, to be re-read as an empty line next time.
            consumed = end if after == len(buffer) and buffer.endswith(b"\r") else after
            lines = []
        start = after
    del buffer[:consumed]  # an event still arriving stays in the buffer and is re-read next time
    return events


def _next_line(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """(end of the line, start of the next) for the line at `start`, or None if it is not complete yet."""
    newline = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start)
    if cr == -1 or (newline != -1 and newline < cr):
        return None if newline == -1 else (newline, newline + 1)
    return (cr, cr + 2) if buffer[cr + 1 : cr + 2] == b"\n" else (cr, cr + 1)


def _read_field(line: bytes, name: str, data: list[bytes]) -> str:
    """Apply one `field: value` line to the event being built; return its (possibly new) name."""
    field, _, value = line.partition(b":")
    value = value[1:] if value.startswith(b" ") else value
    if field == b"event":
        return value.decode("utf-8", "replace")
    if field == b"data":
        data.append(value)
    return name  # comments (": ...") and id/retry fields do not matter to a single request


def sse_frame(name: str, data: bytes) -> bytes:
    """One event as Netra sends it: LF line ends, an `event:` line unless the name is the default, and a `data:`
    line per line of data (so data that arrived on several lines reaches the client exactly as it was)."""
    if name == KEEP_ALIVE:
        return KEEP_ALIVE_EVENT
    framed = b"data: " + (data.replace(b"\n", b"\ndata: ") if b"\n" in data else data) + b"\n\n"
    return framed if name == "message" else b"event: " + name.encode() + b"\n" + framed
