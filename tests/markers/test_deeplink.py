"""Deep-link codes: short, unambiguous on paper, case-insensitive, random."""
import random
import string

import pytest

from markers.deeplink import (
    CODE_ALPHABET,
    DEFAULT_CODE_LENGTH,
    InvalidCodeError,
    deep_link_url,
    new_code,
    normalize_code,
)

LOOK_ALIKES = set("0O1ILU")


def test_alphabet_has_no_look_alike_characters():
    assert not LOOK_ALIKES & set(CODE_ALPHABET)
    assert len(set(CODE_ALPHABET)) == len(CODE_ALPHABET) == 30
    assert set(CODE_ALPHABET) <= set(string.ascii_uppercase + string.digits)


def test_new_code_is_default_length_and_uses_only_the_alphabet():
    codes = [new_code() for _ in range(2000)]  # OS randomness: the real generator
    assert all(len(code) == DEFAULT_CODE_LENGTH == 7 for code in codes)
    assert all(set(code) <= set(CODE_ALPHABET) for code in codes)
    assert not any(LOOK_ALIKES & set(code) for code in codes)
    # with 2000 × 7 draws every one of the 30 symbols shows up
    assert set("".join(codes)) == set(CODE_ALPHABET)


def test_new_code_honours_length_and_refuses_guessable_lengths():
    assert len(new_code(10)) == 10
    for bad in (0, 3, 33):
        with pytest.raises(ValueError):
            new_code(bad)


def test_ten_thousand_codes_are_unique():
    rng = random.Random(20261126)
    codes = [new_code(rng=rng) for _ in range(10_000)]
    assert len(set(codes)) == len(codes)


def test_consecutive_codes_are_not_sequential():
    rng = random.Random(6)
    codes = [new_code(rng=rng) for _ in range(2000)]
    values = [int("".join(str(CODE_ALPHABET.index(ch)).zfill(2) for ch in code)) for code in codes]
    # a counter would change one trailing symbol at a time; random codes differ in ~7 × 29/30 ≈ 6.8 positions
    distances = [sum(a != b for a, b in zip(x, y)) for x, y in zip(codes, codes[1:])]
    assert sum(distances) / len(distances) > 6.3
    assert sum(1 for d in distances if d <= 2) < 5
    # and they are not increasing in order either
    increasing = sum(1 for a, b in zip(values, values[1:]) if b > a)
    assert 0.4 < increasing / (len(values) - 1) < 0.6


def test_default_generator_is_not_seeded_by_the_random_module():
    random.seed(1)
    first = [new_code() for _ in range(5)]
    random.seed(1)
    second = [new_code() for _ in range(5)]
    assert first != second


def test_normalize_code_round_trips_case_insensitively_and_drops_separators():
    rng = random.Random(7)
    for _ in range(200):
        code = new_code(rng=rng)
        assert normalize_code(code) == code
        assert normalize_code(code.lower()) == code
        assert normalize_code(f"  {code[:3].lower()}-{code[3:]} ") == code
        assert normalize_code(" ".join(code)) == code


@pytest.mark.parametrize("typed", ["ABC0DEF", "abcoDEF", "1BCDEFG", "ABiDEFG", "ABlDEFG", "ABCDEFU"])
def test_normalize_code_refuses_look_alikes_with_a_clear_error(typed):
    with pytest.raises(InvalidCodeError, match="look-alike") as info:
        normalize_code(typed)
    assert isinstance(info.value, ValueError)
    assert info.value.value == typed


@pytest.mark.parametrize("typed", ["ABC!DEF", "ÄBCDEFG", "ABC/DEF", "", "   ", "-", "A" * 40, "Ｂ" * 5])
def test_normalize_code_refuses_foreign_characters_and_empty_input(typed):
    with pytest.raises(ValueError):
        normalize_code(typed)


def test_normalize_code_refuses_non_strings():
    with pytest.raises(ValueError):
        normalize_code(1234567)


def test_deep_link_url_is_base_slash_v_slash_canonical_code():
    assert deep_link_url("https://baonhung.vn", "abc-defg") == "https://baonhung.vn/v/ABCDEFG"
    assert deep_link_url("https://baonhung.vn/", "ABCDEFG") == "https://baonhung.vn/v/ABCDEFG"
    assert deep_link_url("http://localhost:5000/ar", "xyz2345") == "http://localhost:5000/ar/v/XYZ2345"


@pytest.mark.parametrize("base", ["baonhung.vn", "/v", "ftp://baonhung.vn", "https://", "https://b.vn/?x=1"])
def test_deep_link_url_refuses_bases_that_are_not_absolute_http(base):
    with pytest.raises(ValueError):
        deep_link_url(base, "ABCDEFG")


def test_deep_link_url_refuses_invalid_codes():
    with pytest.raises(ValueError):
        deep_link_url("https://baonhung.vn", "ABC0DEF")


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:8000", True), ("http://localhost:8000", True), ("http://[::1]:8000", True),
    ("http://192.168.1.20:8000", True), ("https://10.0.0.5", True), ("http://0.0.0.0:8000", True),
    ("https://baoyenbai.com.vn", False), ("https://14.225.254.1", False), ("https://ar.baoyenbai.vn/", False),
])
def test_links_no_phone_can_open_are_told_apart(url, local):
    from markers.deeplink import phones_cannot_reach

    assert phones_cannot_reach(url) is local
