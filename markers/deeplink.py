"""Short deep-link codes for printed pages: ``<base>/v/<CODE>`` opens the phone viewer on that page.

Codes are read off paper by people and typed on phones, so the alphabet leaves out every character that is
easily confused with another one: 0/O, 1/I/L and U (read as V). Because *neither* member of a look-alike pair
is ever printed, normalisation only has to fold case and drop separators; a typed 0, O, 1, I, L or U is
rejected with an error saying so instead of being silently guessed.

Codes are drawn from ``secrets`` (not a counter), so knowing one code says nothing about the next one.
With the default length of 7 there are 30**7 ≈ 2.2e10 codes; callers storing codes must still enforce
uniqueness in the database and draw again on the (rare) collision.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

# 8 digits + 22 letters = 30 symbols; no 0 O 1 I L U (see module docstring).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
# Characters that look like alphabet members or like each other; never printed, refused when typed.
LOOK_ALIKES = "0O1ILU"
# Separators people add when copying a code ("ABC-DEFG", "abc defg"); dropped by normalize_code.
SEPARATORS = " -_.\t"
DEFAULT_CODE_LENGTH = 7  # 30**7 ≈ 2.2e10: unguessable for a print run, short enough to type
MIN_CODE_LENGTH = 4      # below this a code is guessable by enumeration
MAX_CODE_LENGTH = 32     # longer input is not a code but noise; refuse before doing work on it

_RANDOM = secrets.SystemRandom()


class InvalidCodeError(ValueError):
    """A text that is not a deep-link code. ``value`` holds the offending input."""

    def __init__(self, message: str, value: str):
        super().__init__(f"{message}: {value!r}")
        self.value = value


def new_code(length: int = DEFAULT_CODE_LENGTH, *, rng=None) -> str:
    """Return a random code of ``length`` symbols from ``CODE_ALPHABET``.

    ``rng`` : object with ``choice(seq)`` (e.g. ``random.Random(seed)`` in tests); default is the OS CSPRNG.
    """
    if not MIN_CODE_LENGTH <= length <= MAX_CODE_LENGTH:
        raise ValueError(f"code length must be in {MIN_CODE_LENGTH}..{MAX_CODE_LENGTH}, got {length}")
    pick = (rng or _RANDOM).choice
    return "".join(pick(CODE_ALPHABET) for _ in range(length))


def normalize_code(text: str) -> str:
    """Canonical form of a typed or scanned code: upper case, separators removed.

    Raises ``InvalidCodeError`` (a ``ValueError``) on look-alike characters (0 O 1 I L U, never printed),
    on any other character outside the alphabet, and on empty or over-long input.
    """
    if not isinstance(text, str):
        raise InvalidCodeError("code must be a string", repr(text))
    if len(text) > 4 * MAX_CODE_LENGTH:
        raise InvalidCodeError("code is too long", text[:40])
    code = "".join(ch for ch in text.strip() if ch not in SEPARATORS).upper()
    if not code:
        raise InvalidCodeError("code is empty", text)
    if len(code) > MAX_CODE_LENGTH:
        raise InvalidCodeError("code is too long", text)
    bad_look_alikes = sorted({ch for ch in code if ch in LOOK_ALIKES})
    if bad_look_alikes:
        raise InvalidCodeError(
            f"codes never contain {'/'.join(bad_look_alikes)} (look-alike characters are not used)", text)
    foreign = sorted({ch for ch in code if ch not in CODE_ALPHABET})
    if foreign:
        raise InvalidCodeError(f"characters not used in codes: {''.join(foreign)}", text)
    return code


def deep_link_url(base_url: str, code: str) -> str:
    """``<base_url>/v/<CODE>`` with the code normalised; ``base_url`` must be an absolute http(s) URL."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not carry a query or fragment, got {base_url!r}")
    return f"{base_url.rstrip('/')}/v/{normalize_code(code)}"


def phones_cannot_reach(base_url: str) -> bool:
    """True when deep links on ``base_url`` cannot open on a reader's phone: a loopback, private, link-local or
    unspecified address, or localhost (the default when no public address is configured)."""
    import ipaddress

    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: whether phones reach it is the DNS's business
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified
