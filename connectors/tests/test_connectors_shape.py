"""Every connector is built the same way, so a service wires any of them alike."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from ledgerlink.connectors.http import RateBudget, budget_for
from ledgerlink.connectors.netvisor import NetvisorConnector
from ledgerlink.connectors.nmbrs import NmbrsConnector
from ledgerlink.connectors.procountor import ProcountorConnector
from ledgerlink.connectors.twentyfour import TwentyFourConnector
from ledgerlink.connectors.vismanet import VismaNetConnector

ALL = (
    NetvisorConnector,
    ProcountorConnector,
    VismaNetConnector,
    TwentyFourConnector,
    NmbrsConnector,
)
OAUTH = (ProcountorConnector, VismaNetConnector, NmbrsConnector)
COMMON = ("budget", "retry", "transport", "sleep", "clock")
TOKENS = ("session", "store", "store_key")


def keyword_parameters(connector: type) -> dict[str, inspect.Parameter]:
    parameters = list(inspect.signature(vars(connector)["__init__"]).parameters.values())
    assert parameters[1].name == "settings", f"{connector.__name__}: settings comes first"
    assert parameters[1].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    return {p.name: p for p in parameters[2:] if p.kind is inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize("connector", ALL, ids=lambda c: c.__name__)
def test_settings_then_the_same_keyword_parameters(connector: type) -> None:
    keywords = keyword_parameters(connector)
    assert set(COMMON) <= set(keywords), sorted(set(COMMON) - set(keywords))
    assert keywords["sleep"].default is asyncio.sleep
    assert keywords["clock"].default is time.monotonic
    for name in ("budget", "retry", "transport"):
        assert keywords[name].default is None, f"{connector.__name__}.{name}"
    if connector in OAUTH:
        assert set(TOKENS) <= set(keywords), sorted(set(TOKENS) - set(keywords))
        assert all(keywords[name].default is None for name in TOKENS)


@pytest.mark.parametrize("connector", ALL, ids=lambda c: c.__name__)
def test_annotations_agree_across_connectors(connector: type) -> None:
    reference = keyword_parameters(ProcountorConnector)
    keywords = keyword_parameters(connector)
    for name in COMMON + (TOKENS if connector in OAUTH else ()):
        assert keywords[name].annotation == reference[name].annotation, name


def test_a_budget_on_real_time_is_the_vendors_shared_one_and_injected_time_gets_its_own() -> None:
    assert budget_for("procountor", 20, 10) is budget_for("procountor", 20, 10)
    assert budget_for("procountor", 20, 10) is not budget_for("vismanet", 20, 10)

    async def fake_sleep(seconds: float) -> None:
        return None

    private = budget_for("procountor", 20, 10, sleep=fake_sleep, clock=lambda: 5.0)
    assert private is not RateBudget.shared("procountor", 20, 10)
    assert private.now() == 5.0
