"""CloudEvents 1.0 in Kafka *binary content mode*.

The event's attributes travel as Kafka headers prefixed ``ce_`` and its data is the
record value, JSON encoded, with ``content-type: application/json``. Any Kafka client
in any language can publish an event by setting these headers (see the README).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]


class EnvelopeError(ValueError):
    """The record is not a valid CloudEvent in Kafka binary content mode."""


class CloudEvent(BaseModel):
    """The context attributes of one event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    specversion: str = SPECVERSION
    time: datetime | None = None
    subject: str | None = Field(default=None, max_length=500)
    datacontenttype: str = CONTENT_TYPE

    @classmethod
    def new(cls, *, source: str, type: str, subject: str | None = None) -> CloudEvent:
        """A fresh event with a random id and the current time."""
        return cls(
            id=str(uuid.uuid4()),
            source=source,
            type=type,
            time=datetime.now(UTC),
            subject=subject,
        )

    def header_values(self) -> dict[str, str]:
        """The headers of :meth:`to_headers` as text (as the outbox stores them)."""
        values = {
            "ce_specversion": self.specversion,
            "ce_id": self.id,
            "ce_source": self.source,
            "ce_type": self.type,
        }
        if self.time is not None:
            values["ce_time"] = self.time.isoformat()
        if self.subject is not None:
            values["ce_subject"] = self.subject
        values["content-type"] = self.datacontenttype
        return values

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers for binary content mode."""
        headers = [
            ("ce_specversion", self.specversion.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
        ]
        if self.time is not None:
            headers.append(("ce_time", self.time.isoformat().encode()))
        if self.subject is not None:
            headers.append(("ce_subject", self.subject.encode()))
        headers.append(("content-type", self.datacontenttype.encode()))
        return headers

    @classmethod
    def from_headers(cls, headers: Headers) -> CloudEvent:
        """Read the attributes from Kafka headers; :class:`EnvelopeError` says what is wrong."""
        values = _decode_headers(headers)
        missing = [
            name
            for name in ("ce_specversion", "ce_id", "ce_source", "ce_type")
            if name not in values
        ]
        if missing:
            raise EnvelopeError(f"missing CloudEvents header(s): {', '.join(missing)}")
        if values["ce_specversion"] != SPECVERSION:
            raise EnvelopeError(
                f"unsupported ce_specversion {values['ce_specversion']!r}; expected {SPECVERSION!r}"
            )
        content_type = values.get("content-type", CONTENT_TYPE)
        if content_type.split(";")[0].strip().lower() != CONTENT_TYPE:
            raise EnvelopeError(
                f"unsupported content-type {content_type!r}; expected {CONTENT_TYPE}"
            )
        try:
            return cls(
                id=values["ce_id"],
                source=values["ce_source"],
                type=values["ce_type"],
                specversion=values["ce_specversion"],
                time=values.get("ce_time"),  # type: ignore[arg-type]  # pydantic parses ISO text
                subject=values.get("ce_subject"),
                datacontenttype=content_type,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"ce_{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise EnvelopeError(f"invalid CloudEvents header(s): {problems}") from exc


def _decode_headers(headers: Headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    decoded: dict[str, str] = {}
    for name, value in items:
        # Only our own headers are read: a producer's unrelated binary header is its business.
        if value is None or not (name.lower().startswith("ce_") or name.lower() == "content-type"):
            continue
        try:
            decoded[name.lower()] = value.decode() if isinstance(value, bytes) else value
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header {name!r} is not valid UTF-8") from exc
    return decoded
