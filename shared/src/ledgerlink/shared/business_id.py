"""Validation and normal form of company business IDs (FI, NO, SE, NL): a contract rule.

Every event carries a business ID in the normal form defined here, and every service checks
it with this one module (auth for activations, the importer for files, the journal exporter
for ``journal.ready``). Entry points:

- :func:`parse_business_id` (country + any accepted spelling) returns a :class:`BusinessId`
  in normal form or raises :class:`BusinessIdError` with a machine-readable ``reason_code``
  and a human message naming the country's scheme and what is wrong;
- :func:`parse_normal_form` checks a value that claims to be in normal form already (an
  event's ``business_id``): the four normal forms are disjoint, so the shape names the
  country;
- :func:`normalise_business_id` is the lenient form for what a file says about itself: the
  normal form when the ID is valid, else the input compacted (the file is still readable;
  whether its ID matches the connection's is checked elsewhere).

The check digits are python-stdnum's (``stdnum.fi.ytunnus``, ``stdnum.no.orgnr``,
``stdnum.se.orgnr`` / ``stdnum.luhn``), a well-kept library with the registers' rules; the
accepted spellings, the normal form, the reason codes and the messages are ours.

Only ASCII digits ``0-9`` count as digits (``\\d`` would also accept e.g.
Arabic-Indic or full-width digits). Surrounding whitespace is ignored and country
codes are case-insensitive everywhere.

Finland -- Y-tunnus (business ID)
    Normalised form ``NNNNNNN-C``: seven digits, a hyphen, a check digit. Accepted
    inputs: ``NNNNNNN-C``, the same without the hyphen (eight digits), the EU VAT
    form ``FI`` + eight digits (``FI01120389``), and the old six-digit form
    ``NNNNNN-C``, which is padded with a leading zero (``112038-9`` ->
    ``0112038-9``) as the Finnish Tax Administration prescribes for IDs issued
    before the seven-digit format. Only the hyphenated six-digit form is padded:
    seven bare digits are ambiguous and rejected. Check digit: weights
    7, 9, 10, 5, 8, 4, 2 over the body, ``r = sum % 11``; ``r == 0`` gives 0,
    ``r == 1`` means no valid ID exists for that body (none is ever issued),
    otherwise the check digit is ``11 - r``.

Norway -- organisasjonsnummer
    Normalised form: nine digits. Whitespace anywhere is ignored
    (``"923 609 016"``), and the VAT form ``NO`` + nine digits + ``MVA``
    (``NO923609016MVA``) is accepted; prefix and suffix must then both be present.
    Organisation numbers assigned by the Brønnøysund Register Centre
    (Enhetsregisteret) start with 8 or 9, which also keeps them apart from the
    11-digit personal fødselsnummer, so any other first digit is rejected as a
    format error. Check digit (MOD11): weights 3, 2, 7, 6, 5, 4, 3, 2 over the first
    eight digits, ``c = 11 - sum % 11``; 11 becomes 0, and 10 means no valid number
    exists for those eight digits.

Sweden -- organisationsnummer
    Normalised form ``NNNNNN-NNNN``. Accepted inputs: ten digits with or without
    the hyphen, and twelve-digit forms with a prefix: ``16`` marks a legal entity
    (``16556036-0793``), ``18``/``19``/``20`` are the century of a personal identity
    number (``19811218-9876``). The prefix is stripped but must agree with the kind
    of number (``16`` + personnummer, or a century + organisation number, is a
    format error). Check digit: Luhn over the ten digits. A legal entity's number
    has a third digit >= 2 (its "month" is >= 20). A sole trader (enskild
    näringsidkare) has no separate number and uses the owner's personnummer, so a
    third digit below 2 is *not* rejected; the result's ``kind`` is
    ``"personal_identity_number"`` instead of ``"organisation"``. The date part of a
    personnummer is not checked.

Netherlands -- KvK-nummer (Chamber of Commerce number)
    Exactly eight digits, no check digit; normalised form is the eight digits.
    Leading zeros are never added or removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from stdnum import luhn
from stdnum.exceptions import ValidationError
from stdnum.fi import ytunnus
from stdnum.no import orgnr

__all__ = [
    "SUPPORTED_COUNTRIES",
    "BusinessId",
    "BusinessIdError",
    "BusinessIdKind",
    "BusinessIdReason",
    "normalise_business_id",
    "parse_business_id",
    "parse_normal_form",
]

BusinessIdReason = Literal["invalid_format", "invalid_check_digit", "unsupported_country"]
BusinessIdKind = Literal["organisation", "personal_identity_number"]

_FI_SCHEME: Final = "Finnish business ID (Y-tunnus)"
_NO_SCHEME: Final = "Norwegian organisation number (organisasjonsnummer)"
_SE_ORG_SCHEME: Final = "Swedish organisation number (organisationsnummer)"
_SE_PERSONAL_SCHEME: Final = "Swedish personal identity number (personnummer) used as business ID"
_NL_SCHEME: Final = "Dutch Chamber of Commerce number (KvK-nummer)"

_FI_HYPHENATED: Final = re.compile(r"([0-9]{6,7})-([0-9])")
_FI_PLAIN: Final = re.compile(r"([0-9]{7})([0-9])")
_FI_VAT: Final = re.compile(r"FI([0-9]{7})([0-9])")
_NO_PLAIN: Final = re.compile(r"[0-9]{9}")
_NO_VAT: Final = re.compile(r"NO([0-9]{9})MVA")
_SE_FORMS: Final = re.compile(r"(16|18|19|20)?([0-9]{6})-?([0-9]{4})")
_NL_PLAIN: Final = re.compile(r"[0-9]{8}")
_ASCII_DIGITS: Final = re.compile(r"[0-9]+")
_WHITESPACE: Final = re.compile(r"\s+")

_MAX_SHOWN_INPUT: Final = 40


class BusinessIdError(ValueError):
    """A business ID could not be accepted.

    ``reason_code`` is one of ``"invalid_format"``, ``"invalid_check_digit"`` or
    ``"unsupported_country"``; ``message`` (also ``str(error)``) says in words which
    scheme was applied and what is wrong.
    """

    reason_code: BusinessIdReason
    message: str
    #: With ``invalid_check_digit``: the input in its country's normal form (its shape was
    #: right, only the check digit is not).
    normal_form: str | None

    def __init__(
        self, reason_code: BusinessIdReason, message: str, *, normal_form: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.normal_form = normal_form

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class BusinessId:
    """A validated business ID in its country's normalised form.

    Obtain instances from :func:`parse_business_id`; the constructor does not
    validate. ``country`` is the upper-case ISO 3166 alpha-2 code, ``value`` the
    normalised ID and ``kind`` says whether the ID identifies an organisation or is
    a (Swedish sole trader's) personal identity number.
    """

    country: str
    value: str
    kind: BusinessIdKind


def _show(text: str) -> str:
    """Quote user input for an error message, truncated so messages stay short."""
    if len(text) > _MAX_SHOWN_INPUT:
        text = text[: _MAX_SHOWN_INPUT - 1] + "…"
    return repr(text)


def _format_error(scheme: str, shown: str, problem: str, expected: str) -> BusinessIdError:
    return BusinessIdError("invalid_format", f"{scheme} {shown} {problem}; expected {expected}")


def _describe_shape(text: str) -> str:
    """Say what is wrong with the shape of ``text`` in a few words."""
    if not text:
        return "is empty"
    compact = text.replace("-", "")
    if _ASCII_DIGITS.fullmatch(compact):
        return f"has {len(compact)} digits"
    return "contains characters that are not allowed"


def _expected_check_digit(valid: Callable[[str], bool], body: str, given: int) -> int | None:
    """The one check digit that makes ``body`` + digit valid for ``valid``, or None when no
    digit does (a Y-tunnus body with remainder 1, an organisasjonsnummer whose MOD11 digit
    would be 10): the messages say what was expected, the library says what is valid.

    The ``given`` digit is tried first: a valid ID (the usual case) costs one check."""
    if valid(f"{body}{given}"):
        return given
    for digit in range(10):
        if valid(f"{body}{digit}"):
            return digit
    return None


def _stdnum_valid(validate: Callable[[str], str]) -> Callable[[str], bool]:
    def valid(number: str) -> bool:
        try:
            validate(number)
        except ValidationError:
            return False
        return True

    return valid


_fi_valid: Final = _stdnum_valid(ytunnus.validate)
_no_valid: Final = _stdnum_valid(orgnr.validate)
_luhn_valid: Final = _stdnum_valid(luhn.validate)


def _parse_fi(text: str) -> BusinessId:
    expected = "NNNNNNN-C (7 digits, hyphen, check digit), 8 digits, or FI + 8 digits"
    upper = text.upper()
    match = (
        _FI_HYPHENATED.fullmatch(upper) or _FI_PLAIN.fullmatch(upper) or _FI_VAT.fullmatch(upper)
    )
    if match is None:
        raise _format_error(_FI_SCHEME, _show(text), _describe_shape(text), expected)
    # Business IDs issued before the 7-digit format had 6 digits; the official rule
    # is to pad them with a leading zero.
    body = match.group(1).rjust(7, "0")
    given = int(match.group(2))
    value = f"{body}-{given}"
    check = _expected_check_digit(_fi_valid, body, given)
    if check is None:
        raise BusinessIdError(
            "invalid_check_digit",
            f"{_FI_SCHEME} {value} cannot be valid: the weighted sum of {body} leaves "
            "remainder 1 modulo 11, and no business ID with such a body is ever issued",
            normal_form=value,
        )
    if check != given:
        raise BusinessIdError(
            "invalid_check_digit",
            f"{_FI_SCHEME} {value} has check digit {given}; expected {check}",
            normal_form=value,
        )
    return BusinessId(country="FI", value=value, kind="organisation")


def _parse_no(text: str) -> BusinessId:
    expected = "9 digits (spaces allowed) or NO + 9 digits + MVA"
    compact = _WHITESPACE.sub("", text).upper()
    if _NO_PLAIN.fullmatch(compact):
        number = compact
    elif vat := _NO_VAT.fullmatch(compact):
        number = vat.group(1)
    else:
        raise _format_error(_NO_SCHEME, _show(text), _describe_shape(compact), expected)
    if number[0] not in "89":
        raise _format_error(
            _NO_SCHEME,
            number,
            f"starts with {number[0]}",
            "a first digit of 8 or 9, as assigned by the Brønnøysund Register Centre",
        )
    given = int(number[8])
    check = _expected_check_digit(_no_valid, number[:8], given)
    if check is None:
        raise BusinessIdError(
            "invalid_check_digit",
            f"{_NO_SCHEME} {number} cannot be valid: the MOD11 check digit for "
            f"{number[:8]} would be 10, and no such number is ever issued",
            normal_form=number,
        )
    if check != given:
        raise BusinessIdError(
            "invalid_check_digit",
            f"{_NO_SCHEME} {number} has check digit {given}; expected {check}",
            normal_form=number,
        )
    return BusinessId(country="NO", value=number, kind="organisation")


def _parse_se(text: str) -> BusinessId:
    expected = (
        "NNNNNN-NNNN or 10 digits, optionally prefixed with 16 (legal entity) "
        "or 18/19/20 (century of a personnummer)"
    )
    match = _SE_FORMS.fullmatch(text)
    if match is None:
        raise _format_error(_SE_ORG_SCHEME, _show(text), _describe_shape(text), expected)
    prefix, head, tail = match.group(1), match.group(2), match.group(3)
    number = head + tail
    value = f"{head}-{tail}"
    kind: BusinessIdKind = "organisation" if int(number[2]) >= 2 else "personal_identity_number"
    if prefix == "16" and kind != "organisation":
        raise _format_error(
            _SE_ORG_SCHEME,
            _show(text),
            "has the legal-entity prefix 16 but its third digit is below 2 (a personnummer)",
            "16 only before an organisation number",
        )
    if prefix is not None and prefix != "16" and kind != "personal_identity_number":
        raise _format_error(
            _SE_ORG_SCHEME,
            _show(text),
            f"has the century prefix {prefix} but its third digit is 2 or more "
            "(an organisation number)",
            "16 as the prefix of an organisation number",
        )
    scheme = _SE_ORG_SCHEME if kind == "organisation" else _SE_PERSONAL_SCHEME
    given = int(number[9])
    check = _expected_check_digit(_luhn_valid, number[:9], given)
    if check != given:
        raise BusinessIdError(
            "invalid_check_digit",
            f"{scheme} {value} has check digit {given}; expected {check}",
            normal_form=value,
        )
    return BusinessId(country="SE", value=value, kind=kind)


def _parse_nl(text: str) -> BusinessId:
    if not _NL_PLAIN.fullmatch(text):
        raise _format_error(_NL_SCHEME, _show(text), _describe_shape(text), "exactly 8 digits")
    return BusinessId(country="NL", value=text, kind="organisation")


_PARSERS: Final[dict[str, Callable[[str], BusinessId]]] = {
    "FI": _parse_fi,
    "NL": _parse_nl,
    "NO": _parse_no,
    "SE": _parse_se,
}

SUPPORTED_COUNTRIES: Final = frozenset(_PARSERS)


def parse_business_id(country: str, raw: str) -> BusinessId:
    """Validate ``raw`` as a business ID of ``country`` and return it normalised.

    ``country`` is an ISO 3166 alpha-2 code (FI, NO, SE or NL), case-insensitive;
    surrounding whitespace of both arguments is ignored. The accepted input forms
    and the normalised output form of each country are described in the module
    docstring.

    Raises:
        BusinessIdError: ``reason_code`` ``"unsupported_country"`` for any other
            country, ``"invalid_format"`` when ``raw`` is not in an accepted form
            (including empty input), ``"invalid_check_digit"`` when the check digit
            does not match or no valid ID can have the given digits.
    """
    code = country.strip().upper()
    parser = _PARSERS.get(code)
    if parser is None:
        supported = ", ".join(sorted(SUPPORTED_COUNTRIES))
        raise BusinessIdError(
            "unsupported_country",
            f"business ID validation is not supported for country {_show(country)}; "
            f"supported countries: {supported}",
        )
    return parser(raw.strip())


# The normal forms, one per country; no string has two of these shapes.
_NORMAL_FORMS: Final = (
    (re.compile(r"[0-9]{7}-[0-9]"), "FI"),
    (re.compile(r"[0-9]{9}"), "NO"),
    (re.compile(r"[0-9]{6}-[0-9]{4}"), "SE"),
    (re.compile(r"[0-9]{8}"), "NL"),
)


def parse_normal_form(value: str) -> BusinessId:
    """Check ``value`` as a business ID already in its normal form (as events carry it).

    The country follows from the shape (FI ``NNNNNNN-C``, NO nine digits, SE
    ``NNNNNN-NNNN``, NL eight digits); the check digit is then verified as
    :func:`parse_business_id` does. Any other spelling, even of a valid ID, is
    ``invalid_format``: a producer must send the normal form.
    """
    for pattern, country in _NORMAL_FORMS:
        if pattern.fullmatch(value):
            return parse_business_id(country, value)
    raise BusinessIdError(
        "invalid_format",
        f"business ID {_show(value)} is not in the normal form of a supported country: "
        "FI NNNNNNN-C, NO 9 digits, SE NNNNNN-NNNN or NL 8 digits",
    )


def normalise_business_id(country: str, raw: str) -> str:
    """The normal form of ``raw`` when it is a valid ID of ``country``; otherwise ``raw``
    compacted (whitespace and dots removed, upper case), so that what a file says about
    itself is kept as it said it rather than refused while reading."""
    try:
        return parse_business_id(country, raw).value
    except BusinessIdError as error:
        return error.normal_form or re.sub(r"[\s.]", "", raw).upper()
