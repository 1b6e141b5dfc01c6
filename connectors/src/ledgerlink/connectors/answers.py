"""Reading a vendor's answer against its published contract.

A connector never indexes a vendor's body blindly: a missing required field, a value of the
wrong type or an enum value the contract does not list must come out as
:class:`~ledgerlink.connectors.errors.UnexpectedResponse` naming the vendor, the endpoint and
the field, never as a ``KeyError``, ``TypeError`` or ``ValueError`` from deep inside the
parsing. Fields the contract does not mention are ignored (vendors add fields).

:class:`AnswerReader` holds the vendor and endpoint of one answer; every accessor takes the
path of the value read (``"results[3].receiptDate"``) so the error says exactly what was
wrong. It works on decoded JSON (mappings, lists, scalars) and on XML text values alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree import ElementTree as ET

from ledgerlink.connectors.errors import UnexpectedResponse

__all__ = ["AnswerReader", "child_text", "namespace_of"]

_MISSING: Any = object()


@dataclass(frozen=True)
class AnswerReader:
    """Typed access to one vendor answer; every failure is an :class:`UnexpectedResponse`."""

    vendor: str
    endpoint: str
    status: int | None = None

    def unexpected(self, detail: str) -> UnexpectedResponse:
        """The error for an answer outside the contract (to ``raise``)."""
        return UnexpectedResponse(self.vendor, self.endpoint, detail, status=self.status)

    # -- containers ------------------------------------------------------------------------

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        """``value`` as an object (JSON object)."""
        if not isinstance(value, Mapping):
            raise self.unexpected(f"{where} is {_kind(value)}, not an object")
        return value

    def items(self, value: Any, where: str) -> list[Any]:
        """``value`` as a list (JSON array)."""
        if not isinstance(value, list):
            raise self.unexpected(f"{where} is {_kind(value)}, not a list")
        return value

    def field(self, obj: Mapping[str, Any], key: str, where: str) -> Any:
        """The required, non-null field ``key`` of ``obj``."""
        value = obj.get(key, _MISSING)
        if value is _MISSING or value is None:
            raise self.unexpected(f"{_join(where, key)} is missing")
        return value

    def optional_items(self, obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
        """The list ``key`` of ``obj``; an absent or null list is empty."""
        value = obj.get(key)
        return [] if value is None else self.items(value, _join(where, key))

    # -- scalars of a JSON object ----------------------------------------------------------

    def string(self, obj: Mapping[str, Any], key: str, where: str) -> str:
        """A required string (numbers are accepted as their text: ids are both)."""
        return self.text(self.field(obj, key, where), _join(where, key))

    def optional_string(self, obj: Mapping[str, Any], key: str, where: str) -> str | None:
        """An optional string (absent or null is ``None``)."""
        value = obj.get(key)
        return None if value is None else self.text(value, _join(where, key))

    def integer(self, obj: Mapping[str, Any], key: str, where: str) -> int:
        """A required integer."""
        value = self.field(obj, key, where)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.unexpected(f"{_join(where, key)} is {_kind(value)}, not an integer")
        return value

    def number(self, obj: Mapping[str, Any], key: str, where: str) -> Decimal:
        """A required JSON number, exactly (bodies are decoded with ``parse_float=Decimal``)."""
        value = self.field(obj, key, where)
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, float)):
            raise self.unexpected(f"{_join(where, key)} is {_kind(value)}, not a number")
        return Decimal(str(value))

    def boolean(self, obj: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
        """An optional boolean (``default`` when absent or null)."""
        value = obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.unexpected(f"{_join(where, key)} is {_kind(value)}, not a boolean")
        return value

    def iso_date(self, obj: Mapping[str, Any], key: str, where: str) -> dt.date:
        """A required ISO date (``2025-01-31``), written as a JSON string."""
        value = self.field(obj, key, where)
        if not isinstance(value, str):
            raise self.unexpected(f"{_join(where, key)} is {_kind(value)}, not a date string")
        return self.date_text(value, _join(where, key))

    def choice(
        self, obj: Mapping[str, Any], key: str, where: str, allowed: Collection[str]
    ) -> str | None:
        """An optional enum value; a value the contract does not list is refused."""
        value = self.optional_string(obj, key, where)
        if value is not None and value not in allowed:
            raise self.unexpected(f"{_join(where, key)} has the unknown value {value!r}")
        return value

    # -- text values (JSON strings, XML element text) --------------------------------------

    def text(self, value: Any, where: str) -> str:
        """``value`` as text: a string, or a (non-boolean) number written as text."""
        if isinstance(value, str):
            return value
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            return str(value)
        raise self.unexpected(f"{where} is {_kind(value)}, not text")

    def required_text(self, value: str | None, where: str) -> str:
        """Non-empty text (an XML element that must be present and filled)."""
        if value is None or not value.strip():
            raise self.unexpected(f"{where} is missing")
        return value.strip()

    def date_text(self, value: str, where: str, *, formats: tuple[str, ...] = ()) -> dt.date:
        """A date written as ISO (``2025-01-31``, a trailing time is cut) or in ``formats``."""
        text = value.strip()
        for pattern in formats:
            try:
                return dt.datetime.strptime(text, pattern).date()
            except ValueError:
                continue
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            raise self.unexpected(f"{where} is not a date: {text[:40]!r}") from None

    def decimal_text(self, value: str, where: str, *, comma: bool = False) -> Decimal:
        """A decimal written as text (``comma``: Finnish decimal comma, spaces as grouping)."""
        text = value.strip()
        if comma:
            text = text.replace("\u00a0", "").replace(" ", "").replace(",", ".")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise self.unexpected(f"{where} is not a number: {value[:40]!r}") from None
        if not number.is_finite():
            raise self.unexpected(f"{where} is not a finite number: {value[:40]!r}")
        return number

    def integer_text(self, value: str, where: str) -> int:
        """An integer written as text."""
        try:
            return int(value.strip())
        except ValueError:
            raise self.unexpected(f"{where} is not an integer: {value[:40]!r}") from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def namespace_of(element: ET.Element) -> str:
    """The namespace URI of ``element`` ("" when it has none)."""
    return element.tag[1:].partition("}")[0] if element.tag.startswith("{") else ""


def child_text(element: ET.Element, name: str, namespace: str | None = None) -> str:
    """The stripped text of the child ``name`` ("" when it is absent or empty).

    The child is looked up in ``namespace``, by default the element's own: the vendors'
    SOAP schemas are ``elementFormDefault="qualified"``, so children share their parent's
    namespace.
    """
    ns = namespace_of(element) if namespace is None else namespace
    child = element.find(f"{{{ns}}}{name}" if ns else name)
    return (child.text or "").strip() if child is not None else ""
