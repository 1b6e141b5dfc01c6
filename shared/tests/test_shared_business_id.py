"""Unit tests for ledgerlink.shared.business_id (the business-ID contract rule)."""

from __future__ import annotations

import random

import pytest

from ledgerlink.shared.business_id import (
    SUPPORTED_COUNTRIES,
    BusinessId,
    BusinessIdError,
    normalise_business_id,
    parse_business_id,
    parse_normal_form,
)

# Real, publicly registered IDs. Each one was checked against the algorithm by hand
# and appears in public registers / company disclosures under the name given.
FI_PUBLIC = [
    ("0112038-9", "Nokia Oyj"),
    ("1927400-1", "KONE Oyj"),
    ("1463611-4", "Fortum Oyj"),
]
NO_PUBLIC = [
    ("923609016", "Equinor ASA"),
    ("984851006", "DNB Bank ASA"),
    ("982463718", "Telenor ASA"),
    ("974760673", "Registerenheten i Brønnøysund"),
]
SE_PUBLIC = [
    ("556036-0793", "Saab AB"),
    ("556012-5790", "Aktiebolaget Volvo"),
    ("202100-5489", "Bolagsverket"),
    ("212000-0142", "Stockholms stad"),
]
NL_PUBLIC = [
    ("33011433", "Heineken N.V."),
]
# Wikipedia's example personnummer (not a real person); Luhn-valid.
SE_EXAMPLE_PERSONNUMMER = "811218-9876"


def fullwidth(text: str) -> str:
    """``text`` with ASCII digits replaced by full-width digits (U+FF10..U+FF19)."""
    return "".join(chr(ord(c) - ord("0") + 0xFF10) if "0" <= c <= "9" else c for c in text)


def arabic_indic(text: str) -> str:
    """``text`` with ASCII digits replaced by Arabic-Indic digits (U+0660..U+0669)."""
    return "".join(chr(ord(c) - ord("0") + 0x0660) if "0" <= c <= "9" else c for c in text)


FI_WEIGHTS = (7, 9, 10, 5, 8, 4, 2)


def fi_remainder(body: str) -> int:
    """Independent re-implementation of the Y-tunnus weighted sum, for the tests."""
    return sum(w * int(d) for w, d in zip(FI_WEIGHTS, body, strict=True)) % 11


def reject(country: str, raw: str) -> BusinessIdError:
    """Parse and return the error, failing the test if the ID is accepted."""
    with pytest.raises(BusinessIdError) as info:
        parse_business_id(country, raw)
    return info.value


# --- real-world valid IDs -------------------------------------------------------------


@pytest.mark.parametrize(("raw", "name"), FI_PUBLIC)
def test_public_finnish_ids_are_valid(raw: str, name: str) -> None:
    assert parse_business_id("FI", raw) == BusinessId("FI", raw, "organisation"), name


@pytest.mark.parametrize(("raw", "name"), NO_PUBLIC)
def test_public_norwegian_ids_are_valid(raw: str, name: str) -> None:
    assert parse_business_id("NO", raw) == BusinessId("NO", raw, "organisation"), name


@pytest.mark.parametrize(("raw", "name"), SE_PUBLIC)
def test_public_swedish_ids_are_valid(raw: str, name: str) -> None:
    assert parse_business_id("SE", raw) == BusinessId("SE", raw, "organisation"), name


@pytest.mark.parametrize(("raw", "name"), NL_PUBLIC)
def test_public_dutch_ids_are_valid(raw: str, name: str) -> None:
    assert parse_business_id("NL", raw) == BusinessId("NL", raw, "organisation"), name


# --- country handling -----------------------------------------------------------------


@pytest.mark.parametrize("country", ["fi", "Fi", "FI", " fi "])
def test_country_code_is_case_insensitive_and_trimmed(country: str) -> None:
    assert parse_business_id(country, "0112038-9").country == "FI"


@pytest.mark.parametrize("country", ["DK", "DE", "", "FIN", "F I", "xx"])
def test_unsupported_country(country: str) -> None:
    error = reject(country, "12345678")
    assert error.reason_code == "unsupported_country"
    assert "not supported" in error.message
    assert "FI, NL, NO, SE" in error.message


def test_supported_countries() -> None:
    assert frozenset({"FI", "NO", "SE", "NL"}) == SUPPORTED_COUNTRIES


def test_error_is_a_value_error_with_message_as_str() -> None:
    error = reject("FI", "1234567-8")
    assert isinstance(error, ValueError)
    assert str(error) == error.message


def test_business_id_is_frozen() -> None:
    business_id = parse_business_id("NL", "33011433")
    with pytest.raises(AttributeError):
        business_id.value = "00000000"  # type: ignore[misc]


# --- Finland --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "0112038-9",
        "  0112038-9\t",
        "01120389",
        "FI01120389",
        "fi01120389",
        " FI01120389 ",
        "112038-9",  # old six-digit form, padded with a leading zero
    ],
)
def test_finnish_accepted_forms_normalise(raw: str) -> None:
    assert parse_business_id("FI", raw).value == "0112038-9"


def test_finnish_wrong_check_digit_message() -> None:
    error = reject("FI", "1234567-8")
    assert error.reason_code == "invalid_check_digit"
    assert error.message == "Finnish business ID (Y-tunnus) 1234567-8 has check digit 8; expected 1"


def test_finnish_padded_form_reports_normalised_value() -> None:
    error = reject("FI", "112038-8")
    assert error.reason_code == "invalid_check_digit"
    assert "0112038-8 has check digit 8; expected 9" in error.message


def test_finnish_six_digit_form_is_checked_after_padding() -> None:
    # 012038 -> 0012038: remainder 4, so the check digit must be 7.
    assert parse_business_id("FI", "012038-7").value == "0012038-7"
    error = reject("FI", "012038-9")
    assert error.reason_code == "invalid_check_digit"
    assert "0012038-9 has check digit 9; expected 7" in error.message


def test_finnish_remainder_zero_gives_check_digit_zero() -> None:
    body = "1000010"  # 1*7 + 1*4 = 11 -> remainder 0 -> check digit 0
    assert fi_remainder(body) == 0
    assert parse_business_id("FI", f"{body}-0").value == "1000010-0"
    assert reject("FI", f"{body}-1").message.endswith("has check digit 1; expected 0")


def test_finnish_remainder_two_gives_check_digit_nine() -> None:
    body = "1000003"  # 1*7 + 3*2 = 13 -> remainder 2 -> check digit 11 - 2 = 9
    assert fi_remainder(body) == 2
    assert parse_business_id("FI", f"{body}-9").value == "1000003-9"


def test_finnish_remainder_one_is_never_valid() -> None:
    body = "0000030"  # 3 * 4 = 12 -> remainder 1
    assert fi_remainder(body) == 1
    for check in range(10):
        error = reject("FI", f"{body}-{check}")
        assert error.reason_code == "invalid_check_digit"
        assert "remainder 1" in error.message


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "0112038",  # no check digit
        "12038-9",  # five-digit body
        "1120389",  # seven bare digits: ambiguous, not padded
        "00112038-9",  # eight-digit body
        "0112038-98",
        "0112038--9",
        "0112038 9",
        "0112-038-9",
        "01120389-",
        "FI0112038-9",  # VAT form takes no hyphen
        "FI0112038",
        "FI011203899",
        "SE01120389",
        "O112038-9",  # letter O instead of zero
        "0112038-X",
        fullwidth("0112038-9"),  # full-width digits are not ASCII digits
        arabic_indic("0112038-9"),  # Arabic-Indic digits
    ],
)
def test_finnish_invalid_formats(raw: str) -> None:
    error = reject("FI", raw)
    assert error.reason_code == "invalid_format", error.message
    assert error.message.startswith("Finnish business ID (Y-tunnus)")


def test_finnish_format_messages_say_what_is_wrong() -> None:
    assert "is empty" in reject("FI", "").message
    assert "has 9 digits" in reject("FI", "01120389-9").message
    assert "characters that are not allowed" in reject("FI", "0112038-X").message


def test_finnish_property_every_wrong_check_digit_is_rejected() -> None:
    rng = random.Random(20240601)
    tested = 0
    for _ in range(500):
        body = f"{rng.randrange(10_000_000):07d}"
        remainder = fi_remainder(body)
        if remainder == 1:
            for check in range(10):
                assert reject("FI", f"{body}-{check}").reason_code == "invalid_check_digit"
            continue
        check = 0 if remainder == 0 else 11 - remainder
        assert parse_business_id("FI", f"{body}-{check}").value == f"{body}-{check}"
        for wrong in set(range(10)) - {check}:
            error = reject("FI", f"{body}-{wrong}")
            assert error.reason_code == "invalid_check_digit"
            assert error.message.endswith(f"has check digit {wrong}; expected {check}")
            tested += 1
    assert tested > 4000


# --- Norway ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "923609016",
        " 923609016 ",
        "923 609 016",
        "923\u00a0609\u00a0016",  # no-break spaces, as produced by number formatting
        "NO923609016MVA",
        "no923609016mva",
        "NO 923 609 016 MVA",
    ],
)
def test_norwegian_accepted_forms_normalise(raw: str) -> None:
    assert parse_business_id("NO", raw).value == "923609016"


def test_norwegian_wrong_check_digit_message() -> None:
    error = reject("NO", "923609017")
    assert error.reason_code == "invalid_check_digit"
    assert error.message == (
        "Norwegian organisation number (organisasjonsnummer) 923609017 has check digit 7; "
        "expected 6"
    )


def test_norwegian_check_eleven_becomes_zero() -> None:
    # 9*3 + 3*2 = 33 = 3 * 11 -> 11 - 0 = 11 -> check digit 0 (synthetic number)
    assert parse_business_id("NO", "930000000").value == "930000000"
    assert reject("NO", "930000001").reason_code == "invalid_check_digit"


def test_norwegian_check_ten_is_never_valid() -> None:
    # 9*3 + 9*2 = 45 -> 45 % 11 = 1 -> 11 - 1 = 10: no valid number has these 8 digits
    for last in range(10):
        error = reject("NO", f"99000000{last}")
        assert error.reason_code == "invalid_check_digit"
        assert "would be 10" in error.message


@pytest.mark.parametrize("first", ["0", "1", "2", "3", "4", "5", "6", "7"])
def test_norwegian_first_digit_must_be_8_or_9(first: str) -> None:
    # Build a number with a correct check digit, so only the first digit is at fault.
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    for middle in range(1000):
        eight = f"{first}{middle:07d}"
        check = 11 - sum(w * int(d) for w, d in zip(weights, eight, strict=True)) % 11
        if check != 10:
            break
    number = eight + str(0 if check == 11 else check)
    error = reject("NO", number)
    assert error.reason_code == "invalid_format"
    assert f"starts with {first}" in error.message
    assert "8 or 9" in error.message


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "92360901",
        "9236090166",
        "92360901A",
        "923-609-016",
        "923.609.016",
        "NO923609016",  # VAT form needs both NO and MVA
        "923609016MVA",
        "SE923609016MVA",
        "NO923609016MVA1",
        fullwidth("923609016"),
    ],
)
def test_norwegian_invalid_formats(raw: str) -> None:
    error = reject("NO", raw)
    assert error.reason_code == "invalid_format", error.message
    assert error.message.startswith("Norwegian organisation number (organisasjonsnummer)")


def test_norwegian_length_message() -> None:
    assert "has 8 digits; expected 9 digits" in reject("NO", "92360901").message


# --- Sweden ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "556036-0793",
        "5560360793",
        " 556036-0793 ",
        "16556036-0793",
        "165560360793",
    ],
)
def test_swedish_accepted_forms_normalise(raw: str) -> None:
    assert parse_business_id("SE", raw) == BusinessId("SE", "556036-0793", "organisation")


@pytest.mark.parametrize("raw", ["811218-9876", "8112189876", "19811218-9876", "198112189876"])
def test_swedish_personnummer_is_accepted_as_sole_trader_id(raw: str) -> None:
    assert parse_business_id("SE", raw) == BusinessId(
        "SE", SE_EXAMPLE_PERSONNUMMER, "personal_identity_number"
    )


def test_swedish_kind_depends_on_third_digit() -> None:
    assert parse_business_id("SE", "202100-5489").kind == "organisation"  # third digit 2
    assert parse_business_id("SE", "811218-9876").kind == "personal_identity_number"  # 1


def test_swedish_ten_digit_numbers_starting_with_a_prefix_are_not_mistaken() -> None:
    # 2021005489 starts with "20" and 1655... would start with "16"; ten digits are
    # never read as prefix + eight digits.
    assert parse_business_id("SE", "2021005489").value == "202100-5489"


def test_swedish_wrong_check_digit_message() -> None:
    error = reject("SE", "556036-0794")
    assert error.reason_code == "invalid_check_digit"
    assert error.message == (
        "Swedish organisation number (organisationsnummer) 556036-0794 has check digit 4; "
        "expected 3"
    )


def test_swedish_wrong_check_digit_on_personnummer_names_personnummer() -> None:
    error = reject("SE", "811218-9875")
    assert error.reason_code == "invalid_check_digit"
    assert "personnummer" in error.message
    assert "expected 6" in error.message


@pytest.mark.parametrize(("body", "check"), [("556036079", 3), ("556012579", 0)])
def test_swedish_luhn_every_other_digit_rejected(body: str, check: int) -> None:
    for wrong in set(range(10)) - {check}:
        assert reject("SE", f"{body}{wrong}").reason_code == "invalid_check_digit"


def test_swedish_prefix_must_match_kind() -> None:
    error = reject("SE", "16811218-9876")
    assert error.reason_code == "invalid_format"
    assert "prefix 16" in error.message
    error = reject("SE", "19556036-0793")
    assert error.reason_code == "invalid_format"
    assert "century prefix 19" in error.message


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "556036-079",
        "55603607930",
        "5560-360793",
        "556036 0793",
        "556036+0793",
        "17556036-0793",  # unknown prefix
        "0016556036-0793",
        "SE5560360793",
        "55603607X3",
        fullwidth("556036-0793"),
    ],
)
def test_swedish_invalid_formats(raw: str) -> None:
    error = reject("SE", raw)
    assert error.reason_code == "invalid_format", error.message
    assert error.message.startswith("Swedish organisation number (organisationsnummer)")


# --- Netherlands ----------------------------------------------------------------------


def test_dutch_surrounding_whitespace() -> None:
    assert parse_business_id("nl", " 33011433\n").value == "33011433"


def test_dutch_leading_zero_kept() -> None:
    assert parse_business_id("NL", "01234567").value == "01234567"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("", "is empty"),
        ("3301143", "has 7 digits"),
        ("330114330", "has 9 digits"),
        ("3301 1433", "characters that are not allowed"),
        ("NL33011433", "characters that are not allowed"),
        ("3301143A", "characters that are not allowed"),
        (fullwidth("33011433"), "characters that are not allowed"),
    ],
)
def test_dutch_invalid_formats(raw: str, detail: str) -> None:
    error = reject("NL", raw)
    assert error.reason_code == "invalid_format"
    assert error.message.startswith("Dutch Chamber of Commerce number (KvK-nummer)")
    assert detail in error.message
    assert "expected exactly 8 digits" in error.message


# --- messages -------------------------------------------------------------------------


def test_long_input_is_truncated_in_message() -> None:
    error = reject("NL", "9" * 500)
    assert error.reason_code == "invalid_format"
    assert len(error.message) < 200
    assert "has 500 digits" in error.message


# --- the normal form as events carry it -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "country"),
    [("0112038-9", "FI"), ("923609016", "NO"), ("556036-0793", "SE"), ("33011433", "NL")],
)
def test_a_normal_form_names_its_country(value: str, country: str) -> None:
    assert parse_normal_form(value) == parse_business_id(country, value)


def test_a_normal_form_with_a_wrong_check_digit_is_refused() -> None:
    error = reject_normal("0112038-8")
    assert error.reason_code == "invalid_check_digit"
    assert error.message.endswith("0112038-8 has check digit 8; expected 9")
    assert reject_normal("556036-0794").reason_code == "invalid_check_digit"
    assert reject_normal("923609017").reason_code == "invalid_check_digit"


@pytest.mark.parametrize("value", ["5560360793", "NO923609016MVA", "FI01120389", " 33011433", ""])
def test_other_spellings_are_not_the_normal_form(value: str) -> None:
    error = reject_normal(value)
    assert error.reason_code == "invalid_format"
    assert "not in the normal form" in error.message


def reject_normal(value: str) -> BusinessIdError:
    with pytest.raises(BusinessIdError) as info:
        parse_normal_form(value)
    return info.value


def test_lenient_normalisation_keeps_the_shape_of_an_id_with_a_wrong_check_digit() -> None:
    # What a file says about itself is kept: valid IDs in normal form, a wrong check digit
    # in its country's shape, anything else compacted.
    assert normalise_business_id("SE", "5560360793") == "556036-0793"
    assert normalise_business_id("SE", "165571-0918") == "165571-0918"
    assert normalise_business_id("NO", "NO 923 609 016 MVA") == "923609016"
    assert normalise_business_id("FI", "0112038-8") == "0112038-8"
    assert normalise_business_id("NO", "a") == "A"
    assert normalise_business_id("SE", "55 60.36") == "556036"
