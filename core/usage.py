"""Token usage in one shape for every provider, so one cost formula prices them all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    """Tokens of one call, in the OpenAI convention.

    `prompt_tokens` counts every input token, including those read from and written to the provider's
    prompt cache; `cached_tokens` and `cache_write_tokens` say how many of them were which. Adapters
    for providers that count them apart (Anthropic) add them into `prompt_tokens`.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reported: bool = True

    @property
    def uncached_prompt_tokens(self) -> int:
        """Input tokens billed at the plain input price."""
        return max(self.prompt_tokens - self.cached_tokens - self.cache_write_tokens, 0)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion."""
        return self.prompt_tokens + self.completion_tokens


def estimate_tokens(chars: int) -> int:
    """A rough token count for text of this many characters (about four characters a token)."""
    return (chars + 3) // 4
