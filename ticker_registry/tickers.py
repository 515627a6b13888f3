"""Ticker normalisation: one safe spelling per trading symbol.

A ticker ends up in registry names (``order_flow.ETHUSDT``), file names and
SQL rows, so only upper-case ASCII letters and digits survive, at most
``MAX_TICKER_LENGTH`` of them. Common separators between base and quote
(``/``, ``-``, ``_``, ``:``) are dropped; everything else is refused. When a
separator is present, the part after it must look like a quote currency (at
least ``MIN_QUOTE_LENGTH`` characters), so ``"BRK/B"`` is refused rather than
silently becoming ``"BRKB"``.
"""

from __future__ import annotations

import re

from .exceptions import InvalidTickerError

__all__ = ["MAX_TICKER_LENGTH", "normalize_ticker"]

MAX_TICKER_LENGTH = 40
MIN_QUOTE_LENGTH = 3
_SEPARATORS = re.compile(r"[/\-_:]")
_VALID = re.compile(r"[A-Z0-9]+")


def normalize_ticker(text: str) -> str:
    """Return the canonical spelling of a ticker: ``"eth/usdt"`` -> ``"ETHUSDT"``.

    Leading and trailing white space is stripped, letters are upper-cased and
    one separator between base and quote (``/``, ``-``, ``_`` or ``:``) is
    removed.

    Raises
    ------
    InvalidTickerError
        If the text is empty, contains spaces, path parts (``..``, more than
        one separator, backslashes), control or non-ASCII characters, or is
        longer than ``MAX_TICKER_LENGTH`` characters once normalised.
    """
    if not isinstance(text, str):
        raise InvalidTickerError(
            f"ticker must be a string like 'ETHUSDT', got {type(text).__name__} {text!r}"
        )
    stripped = text.strip()
    if not stripped:
        raise InvalidTickerError(
            f"ticker is empty ({text!r}); give a symbol such as 'ETHUSDT' or 'ETH/USDT'"
        )
    if len(stripped) > MAX_TICKER_LENGTH + 1:
        raise InvalidTickerError(
            f"ticker {_short(stripped)!r} is {len(stripped)} characters long; "
            f"at most {MAX_TICKER_LENGTH} letters and digits are allowed"
        )
    if not stripped.isascii() or not stripped.isprintable():
        raise InvalidTickerError(
            f"ticker {stripped!r} contains control or non-ASCII characters; "
            "use plain letters and digits such as 'ETHUSDT'"
        )
    if len(_SEPARATORS.findall(stripped)) > 1 or ".." in stripped:
        raise InvalidTickerError(
            f"ticker {stripped!r} looks like a path, not a symbol; "
            "use base and quote with at most one separator, such as 'ETH/USDT'"
        )
    parts = _SEPARATORS.split(stripped)
    if len(parts) == 2 and (not parts[0] or len(parts[1]) < MIN_QUOTE_LENGTH):
        raise InvalidTickerError(
            f"ticker {stripped!r} does not read as BASE/QUOTE: the quote currency must have "
            f"at least {MIN_QUOTE_LENGTH} characters (USD, EUR, USDT, ...); "
            "write the pair as 'ETH/USDT' or the symbol as 'ETHUSDT'"
        )
    canonical = "".join(parts).upper()
    if not _VALID.fullmatch(canonical):
        raise InvalidTickerError(
            f"ticker {stripped!r} contains characters other than letters and digits; "
            "use a symbol such as 'ETHUSDT' or 'ETH/USDT'"
        )
    if len(canonical) > MAX_TICKER_LENGTH:
        raise InvalidTickerError(
            f"ticker {_short(canonical)!r} is {len(canonical)} characters long; "
            f"at most {MAX_TICKER_LENGTH} are allowed"
        )
    return canonical


def _short(text: str) -> str:
    return text if len(text) <= 50 else text[:47] + "..."
