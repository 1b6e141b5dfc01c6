"""Column types of the journal exporter's store."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

_CENT = Decimal("0.01")
_LIMIT = Decimal("10") ** 16  # NUMERIC(18, 2): 16 digits before the point


class Money(TypeDecorator[Decimal]):
    """An exact amount with 2 decimals: ``NUMERIC(18, 2)``; exact text on SQLite.

    SQLite has no exact decimal type: its NUMERIC keeps 15 significant digits and
    SQLAlchemy would pass values through ``float``. There the amount is stored as its
    decimal text instead (``"1234.50"``). Either way Python sees :class:`Decimal` only.
    The migrations spell this ``sa.Numeric(precision=18, scale=2).with_variant(
    sa.String(length=24), 'sqlite')``.
    """

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(24))
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise TypeError(f"an amount must be a finite Decimal, not {value!r}")
        amount = value.quantize(_CENT)
        if amount != value:
            raise ValueError(f"amount {value} has more than 2 decimals")
        if abs(amount) >= _LIMIT:
            raise ValueError(f"amount {value} does not fit NUMERIC(18, 2)")
        return format(amount, "f") if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value).quantize(_CENT)
