"""Our own small retry loop around one SDK call (the SDKs' retries are turned off so that the
policy, the attempts and the waiting are the same for every provider and visible in one place)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TypeVar

from marlin.agents.providers import ProviderError

T = TypeVar("T")


@dataclass(frozen=True)
class Retryable:
    """Returned by a provider's classifier: worth another attempt, after ``retry_after`` if
    given."""

    reason: str
    retry_after: float | None = None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/odd."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)] so clients do not retry in step."""
    return random.uniform(0, min(cap, base * (2**attempt)))


def with_retries(
    call: Callable[[], T],
    classify: Callable[[Exception], Retryable | ProviderError | None],
    *,
    max_attempts: int,
    base: float,
    cap: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; ``classify`` turns SDK exceptions into Retryable or ProviderError.

    Exceptions that ``classify`` returns None for are programming errors and propagate as they are.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1.")
    last: Retryable | None = None
    for attempt in range(max_attempts):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - handed to the provider's classifier
            verdict = classify(exc)
            if verdict is None:
                raise
            if isinstance(verdict, ProviderError):
                raise verdict from exc
            last = verdict
        if attempt + 1 < max_attempts:
            delay = backoff_delay(attempt, base=base, cap=cap)
            if last.retry_after is not None:
                # The server said when; honour it (bounded by cap so a bad header cannot stall us).
                delay = min(cap, max(delay, last.retry_after))
            sleep(delay)
    assert last is not None
    raise ProviderError(f"Gave up after {max_attempts} attempts; last error: {last.reason}")


# Statuses worth another try: rate limits, "request timeout", lock conflicts and server trouble.
_RETRY_STATUSES = {408, 409, 425, 429}


def classify_sdk_error(
    sdk: ModuleType, provider: str
) -> Callable[[Exception], Retryable | ProviderError | None]:
    """A classifier for the openai and anthropic SDKs, which share their exception names."""
    timeout_error = sdk.APITimeoutError
    connection_error = sdk.APIConnectionError
    status_error = sdk.APIStatusError
    base_error = getattr(sdk, "OpenAIError", None) or sdk.AnthropicError

    def classify(exc: Exception) -> Retryable | ProviderError | None:
        if isinstance(exc, timeout_error):
            return Retryable("request timed out")
        if isinstance(exc, connection_error):
            return Retryable(f"connection error: {exc}")
        if isinstance(exc, status_error):
            status = exc.status_code
            detail = _short(str(exc))
            if status in _RETRY_STATUSES or status >= 500:
                retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
                return Retryable(f"HTTP {status}: {detail}", retry_after)
            hint = " (check the API key)" if status in (401, 403) else ""
            return ProviderError(f"{provider} answered HTTP {status}{hint}: {detail}")
        if isinstance(exc, base_error):
            return ProviderError(f"{provider} error: {_short(str(exc))}")
        return None

    return classify


def _short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
