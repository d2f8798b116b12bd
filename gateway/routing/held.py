"""A provider stream that keeps its deployment counted as busy until it is closed (least-in-flight balancing)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from core.usage import Usage
from gateway.providers.base import UpstreamStream


class HeldStream:
    """Delegates to the provider's stream; `release` runs once, when the stream is closed."""

    def __init__(self, stream: UpstreamStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    @property
    def usage(self) -> Usage | None:
        """Tokens the provider reported, once it reported them."""
        return self._stream.usage

    @property
    def completion_chars(self) -> int:
        """Characters of generated text relayed so far."""
        return self._stream.completion_chars

    @property
    def error_code(self) -> str:
        """The code of the failure that ended the stream, or empty."""
        return self._stream.error_code

    def events(self) -> AsyncIterator[bytes]:
        """The provider's client-ready events."""
        return self._stream.events()

    async def aclose(self) -> None:
        """Close the provider stream and free the deployment's slot."""
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def hold_stream(stream: UpstreamStream, release: Callable[[], None]) -> UpstreamStream:
    """The stream, holding its deployment's in-flight slot until closed."""
    return HeldStream(stream, release)
