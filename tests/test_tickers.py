import pytest

from ticker_registry import InvalidTickerError, normalize_ticker


@pytest.mark.parametrize("text", ["eth/usdt", "ETH-USDT", " ethusdt ", "ETH_USDT", "eth:usdt", "ETHUSDT"])
def test_spellings_normalise_to_one_symbol(text):
    assert normalize_ticker(text) == "ETHUSDT"


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "..", "../x", "a/b/c", "ETH/USDT/../x", "BRK/B", "ETH USDT", "ETH\x00USDT",
        "ETH\nUSDT", "ЕTHUSDT",  # Cyrillic E
        "ETHUSDT\u200b", "ＥＴＨUSDT", "A" * 41, "A" * 300, "ETH\\USDT", "ETH.USDT", "/ETHUSDT",
    ],
)
def test_unsafe_tickers_are_refused(text):
    with pytest.raises(InvalidTickerError) as info:
        normalize_ticker(text)
    assert "ticker" in str(info.value)


def test_non_string_is_refused():
    with pytest.raises(InvalidTickerError, match="string"):
        normalize_ticker(42)  # type: ignore[arg-type]


def test_forty_characters_is_the_limit():
    assert normalize_ticker("a" * 40) == "A" * 40
