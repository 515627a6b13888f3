"""Inputs nobody tried: pipes, bombs, duplicates, odd containers; each a clear error in the tree."""

from __future__ import annotations

import gzip
import io
import logging
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from ticker_registry import (
    Config,
    ConfigError,
    FeatureSpec,
    SampleValidationError,
    TradeDataError,
    compute_live_features,
    read_trades,
)
from ticker_registry.data import detect
from ticker_registry.features import FEATURE_NAMES
from ticker_registry.samples.validation import validate_sample

ROWS = ["1,0.5,2.0,1,1,1700000000000,True,True", "2,0.6,1.0,2,2,1700000000100,False,True",
        "3,0.7,1.5,3,3,1700000000200,True,True"]


def test_a_fifo_is_refused_instead_of_blocking(tmp_path):
    fifo = tmp_path / "trades.csv"
    os.mkfifo(fifo)
    with pytest.raises(TradeDataError, match="not a regular file"):
        read_trades(fifo)


@pytest.mark.parametrize("wrap", ["gzip", "zip"])
def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch, wrap):
    monkeypatch.setattr(detect, "MAX_TRADE_BYTES", 10_000)
    body = ("\n".join(ROWS) + "\n").encode() * 1000  # 100 KB of CSV, a few KB compressed
    path = tmp_path / f"bomb.{wrap}"
    if wrap == "gzip":
        path.write_bytes(gzip.compress(body))
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("bomb.csv", body)
        path.write_bytes(buffer.getvalue())
    with pytest.raises(TradeDataError, match="decompresses to more than"):
        read_trades(path)


def test_shuffled_and_duplicated_trades_give_one_canonical_frame(tmp_path, caplog):
    plain = tmp_path / "a.csv"
    plain.write_text("\n".join(ROWS) + "\n")
    shuffled = tmp_path / "b.csv"
    shuffled.write_text("\n".join([ROWS[2], ROWS[0], ROWS[1], ROWS[0], ROWS[2]]) + "\n")
    with caplog.at_level(logging.WARNING, logger="ticker_registry.data"):
        b = read_trades(shuffled)
    pd.testing.assert_frame_equal(read_trades(plain), b)
    assert "dropped 2 duplicated trade(s)" in caplog.text


def test_namespace_must_be_a_plain_name():
    for bad in ("%", "a.b", "../x", ""):
        with pytest.raises(ConfigError, match="namespace"):
            Config(namespace=bad)


def test_sample_inputs_are_refused_with_our_errors():
    row = {n: 0.0 for n in FEATURE_NAMES}
    series = pd.Series(list(row.values()) + [1.0], index=[*FEATURE_NAMES, FEATURE_NAMES[0]])
    with pytest.raises(SampleValidationError, match="repeats the label"):
        validate_sample(series, "balanced", 0.0, 1.0)
    huge = {f"k{i}": 0.0 for i in range(1_000_000)}
    with pytest.raises(SampleValidationError) as caught:
        validate_sample(huge, "balanced", 0.0, 1.0)
    assert len(str(caught.value)) < 500


def test_live_inputs_are_refused_with_our_errors():
    events = [{"timestamp": 1_700_000_000_000 + i, "price": 1.0, "quantity": 1.0, "side": "buy"}
              for i in range(20)]
    spec = FeatureSpec()
    with pytest.raises(SampleValidationError, match=r"market_data\['bid'\] is 'x'"):
        compute_live_features(events, {"bid": "x", "ask": 1.0}, spec)
    with pytest.raises(SampleValidationError, match="order event 0 is a int"):
        compute_live_features([1] * 20, None, spec)
    with pytest.raises(SampleValidationError, match="market_data is a list"):
        compute_live_features(events, [1.0, 2.0], spec)
    assert np.isfinite(list(compute_live_features(events, None, spec).values())).all()
