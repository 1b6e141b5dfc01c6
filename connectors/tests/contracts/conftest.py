"""Helpers of the contract tests: a vendor stand-in made of routes on httpx MockTransport.

The contract tests run each connector against answers written from the vendor's published
schema (cited per fixture), not against our sandbox, so a connector and a sandbox that agree
on a wrong shape cannot both pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def json_response(body: Any, status: int = 200) -> httpx.Response:
    """``body`` as a JSON answer (Decimals written as numbers)."""

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        raise TypeError(type(value).__name__)

    return httpx.Response(
        status,
        content=json.dumps(body, default=default).encode(),
        headers={"Content-Type": "application/json"},
    )


@dataclass
class Routes:
    """Answers by (method, path); every request is kept for assertions."""

    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    prefixes: list[tuple[str, str, Answer]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    # Test modules reach the helper through the fixture (conftest is not importable).
    json = staticmethod(json_response)

    def add(self, method: str, path: str, answer: Answer) -> None:
        """Answer ``method path`` (exact path, any query string)."""
        self.answers[(method, path)] = answer

    def add_prefix(self, method: str, prefix: str, answer: Answer) -> None:
        """Answer every ``method`` request whose path starts with ``prefix``."""
        self.prefixes.insert(0, (method, prefix, answer))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get((request.method, request.url.path))
        if answer is None:
            for method, prefix, candidate in self.prefixes:
                if method == request.method and request.url.path.startswith(prefix):
                    answer = candidate
                    break
        if answer is None:
            return httpx.Response(404, json={"unrouted": f"{request.method} {request.url.path}"})
        return answer(request) if callable(answer) else answer

    def transport(self) -> httpx.MockTransport:
        """The transport to give the connector."""
        return httpx.MockTransport(self.handle)

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        """The requests sent to ``method path``."""
        return [r for r in self.requests if r.method == method and r.url.path == path]


@pytest.fixture
def routes() -> Routes:
    return Routes()


class FakeTime:
    """A clock and the sleep that advances it, for a RateBudget that never really waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
