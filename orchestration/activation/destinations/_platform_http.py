"""One HTTP request to a campaign platform with the retries every platform documents alike:
429 (or the platform's own throttle answer) waits Retry-After, 5xx and dropped connections back
off exponentially, a timeout is reported as such (the request may have been applied: the caller
decides whether to read back or resend). Used by the google_ads, meta and klaviyo clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from orchestration.activation.destinations.registry import RateLimiter


@dataclass(frozen=True)
class Retry:
    max_attempts: int = 5
    backoff_seconds: float = 0.5  # first backoff; doubles per attempt
    max_wait_seconds: float = 120.0


class Timeout:
    """No answer within the timeout: the platform may or may not have applied the request."""

    def __repr__(self) -> str:
        return "Timeout()"


class GaveUp:
    """Every attempt was refused for a transient reason (429, 5xx, connection): not applied."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"GaveUp({self.why!r})"


Answer = httpx.Response | Timeout | GaveUp


class PlatformHttp:
    """Requests to one platform with its retries; `throttled(response)` says whether a non-429
    answer is the platform's rate-limit answer (Meta's error codes), `wait(response)` how long
    it asks to wait (Retry-After by default)."""

    def __init__(
        self,
        http: httpx.Client,
        retry: Retry,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = lambda message: None,
        throttled: Callable[[httpx.Response], bool] = lambda response: False,
        rate: RateLimiter | None = None,
        name: str = "platform",
    ) -> None:
        self.http, self.retry, self.sleep, self.log = http, retry, sleep, log
        self.throttled, self.rate, self.name = throttled, rate or RateLimiter(None), name
        self._not_before, self._lock = 0.0, threading.Lock()
        self.requests = 0

    def wait_seconds(self, response: httpx.Response, attempt: int) -> float:
        value = response.headers.get("Retry-After", "")
        try:
            wait = max(float(value), 0.0)
        except ValueError:
            wait = self.retry.backoff_seconds * 2 ** (attempt - 1)
        return min(wait, self.retry.max_wait_seconds)

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        """The platform's answer (any status but 429 / throttle / 5xx), Timeout, or GaveUp."""
        why = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            with self._lock:
                self.requests += 1
                delay = self._not_before - time.monotonic()
            if delay > 0:
                self.sleep(delay)
            self.rate.wait()
            try:
                response = self.http.request(method, url, **kwargs)
            except httpx.TimeoutException:
                return Timeout()
            except httpx.TransportError as exc:
                why = f"connection error ({type(exc).__name__})"
                self.sleep(self.retry.backoff_seconds * 2 ** (attempt - 1))
                continue
            if response.status_code == 429 or self.throttled(response):
                wait = self.wait_seconds(response, attempt)
                with self._lock:
                    self._not_before = max(self._not_before, time.monotonic() + wait)
                why = "rate limited"
                self.log(f"{self.name}: rate limited, waiting {wait:.1f}s")
                self.sleep(wait)
                continue
            if response.status_code >= 500:
                why = f"HTTP {response.status_code}"
                self.sleep(self.retry.backoff_seconds * 2 ** (attempt - 1))
                continue
            return response
        return GaveUp(f"{why} after {self.retry.max_attempts} attempts")


def json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
