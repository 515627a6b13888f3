"""Tests of ticker_registry.data: real files, every format, every error, and a fuzz property.

The real files are read from the shared data folder (``shared_data`` in
conftest.py); tests about generic behaviour write their own files.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticker_registry.data import CANONICAL_COLUMNS, infer_side_tick_rule, read_trades
from ticker_registry.data.detect import detect_format, load_source
from ticker_registry.exceptions import TradeDataError

from conftest import shared_data

BINANCE_ZIP = "XRPETH-aggTrades-2019-10.zip"
BINANCE_AGG_GZ = "LTCUSDT-aggTrades-2025-06-21_22.csv.gz"
BINANCE_SPOT_TRADES = "BTCUSDT-trades-2024-08-08.csv"
BINANCE_UM_TRADES = "ETHUSDT-um-trades-2024-08-08.csv"
CCXT_JSON_GZ = "XRPETH-trades-2019-10.json.gz"
CCXT_CSV = "ETHUSDT-trades-2023-02-02.csv"
KRAKEN_CSV = "BCHEUR-kraken-trades-2023-01.csv"

BINANCE_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
BINANCE_ROWS = [
    "101,0.5,2.0,1,1,1700000000000,True,True",
    "102,0.6,1.5,2,3,1700000000100,False,True",
    "103,0.6,3.0,4,4,1700000000100,true,True",
    "104,0.4,1.0,5,5,1700000001000,false,True",
]


def assert_canonical(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == CANONICAL_COLUMNS
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["price"].dtype == np.float64
    assert df["quantity"].dtype == np.float64
    assert df["side"].dtype == np.int8
    assert df["trade_id"].dtype == np.int64
    assert isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1
    assert df["timestamp"].is_monotonic_increasing
    assert set(np.unique(df["side"])) <= {-1, 1}
    assert (df["price"] > 0).all() and (df["quantity"] > 0).all()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the real files ----------------------------------------------------------


def test_canonical_columns() -> None:
    assert CANONICAL_COLUMNS == ("timestamp", "price", "quantity", "side", "trade_id")


@pytest.mark.parametrize(
    "name",
    [BINANCE_ZIP, BINANCE_AGG_GZ, BINANCE_SPOT_TRADES, BINANCE_UM_TRADES, CCXT_JSON_GZ, CCXT_CSV,
     KRAKEN_CSV],
)
def test_real_files_load_as_canonical(name: str) -> None:
    df = read_trades(shared_data(name))
    assert_canonical(df)
    assert df.attrs["skipped_rows"] == 0


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        (BINANCE_ZIP, "binance_agg"),
        (BINANCE_AGG_GZ, "binance_agg"),
        (BINANCE_SPOT_TRADES, "binance_trades"),
        (BINANCE_UM_TRADES, "binance_trades"),
        (CCXT_JSON_GZ, "ccxt_json"),
        (CCXT_CSV, "ccxt_csv"),
        (KRAKEN_CSV, "kraken_csv"),
    ],
)
def test_formats_are_detected(name: str, fmt: str) -> None:
    assert detect_format(load_source(shared_data(name))) == fmt


def test_binance_zip_and_ccxt_json_give_identical_frames() -> None:
    binance = read_trades(shared_data(BINANCE_ZIP))
    ccxt = read_trades(shared_data(CCXT_JSON_GZ))
    assert len(binance) == 12_477
    pd.testing.assert_frame_equal(binance, ccxt)
    first = binance.iloc[0]
    assert first["trade_id"] == 13519807
    assert first["side"] == -1  # is_buyer_maker=True: the seller was the aggressor
    assert first["timestamp"] == pd.Timestamp(1570752011620, unit="ms", tz="UTC")


@pytest.mark.parametrize(("name", "rows", "header"), [(BINANCE_SPOT_TRADES, 19_904, False),
                                                      (BINANCE_UM_TRADES, 14_076, True)])
def test_binance_trades_samples(name: str, rows: int, header: bool) -> None:
    path = shared_data(name)
    with path.open(newline="") as f:
        raw = list(csv.reader(f))[1 if header else 0:]
    df = read_trades(path)
    assert_canonical(df)
    assert len(df) == len(raw) == rows
    raw.sort(key=lambda r: int(r[4]))  # the reader's order: by time, stable
    assert df["trade_id"].tolist() == [int(r[0]) for r in raw]
    # Times exact to the ms: the raw integer ms, nothing rounded or shifted.
    assert df["timestamp"].astype("int64").tolist() == [int(r[4]) * 1_000_000 for r in raw]
    assert df["price"].tolist() == [float(r[1]) for r in raw]
    assert df["quantity"].tolist() == [float(r[2]) for r in raw]
    # is_buyer_maker true: the taker sold.
    assert df["side"].tolist() == [-1 if r[5].lower() == "true" else 1 for r in raw]
    assert set(df["side"]) == {-1, 1}


def test_ccxt_csv_with_index_column() -> None:
    df = read_trades(shared_data(CCXT_CSV))
    assert len(df) == 1000
    assert df["trade_id"].iloc[0] == 1206419187
    assert df["price"].iloc[0] == 1666.8
    assert df["side"].iloc[:2].tolist() == [1, -1]
    assert df["timestamp"].iloc[0] == pd.Timestamp("2023-02-02 09:20:00.138", tz="UTC")


def test_ccxt_csv_without_index_column(tmp_path: Path) -> None:
    real = shared_data(CCXT_CSV)
    lines = real.read_text().splitlines()
    stripped = write(tmp_path / "noindex.csv", "\n".join(line.split(",", 1)[1] for line in lines))
    assert detect_format(load_source(stripped)) == "ccxt_csv"
    pd.testing.assert_frame_equal(read_trades(stripped), read_trades(real))


def test_kraken_side_is_inferred_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ticker_registry.data"):
        df = read_trades(shared_data(KRAKEN_CSV))
    # The file holds 148 well-formed trades (no header); every one is kept.
    assert len(df) == 148
    assert "inferred" in caplog.text and "tick rule" in caplog.text
    np.testing.assert_array_equal(df["side"], infer_side_tick_rule(df["price"]))
    np.testing.assert_array_equal(df["trade_id"], np.arange(148))
    assert df["timestamp"].iloc[0] == pd.Timestamp(1672531436, unit="s", tz="UTC")


# --- tick rule ---------------------------------------------------------------


def test_tick_rule() -> None:
    side = infer_side_tick_rule([10.0, 11.0, 11.0, 10.5, 10.5, 10.5, 12.0, 12.0])
    assert side.dtype == np.int8
    assert side.tolist() == [1, 1, 1, -1, -1, -1, 1, 1]
    assert infer_side_tick_rule([5.0, 5.0, 4.0]).tolist() == [1, 1, -1]
    assert infer_side_tick_rule([]).tolist() == []


# --- Binance variants --------------------------------------------------------


def test_binance_header_and_no_header_agree(tmp_path: Path) -> None:
    plain = write(tmp_path / "spot.csv", "\n".join(BINANCE_ROWS) + "\n")
    headed = write(
        tmp_path / "futures.csv",
        BINANCE_HEADER + "\n" + "\n".join(r.rsplit(",", 1)[0] for r in BINANCE_ROWS) + "\n",
    )
    a, b = read_trades(plain), read_trades(headed)
    assert_canonical(a)
    pd.testing.assert_frame_equal(a, b)
    assert a["side"].tolist() == [-1, 1, -1, 1]
    assert a["trade_id"].tolist() == [101, 102, 103, 104]


def test_binance_header_with_is_best_match(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", BINANCE_HEADER + ",is_best_match\n" + "\n".join(BINANCE_ROWS))
    assert read_trades(path, fmt="binance_agg")["side"].tolist() == [-1, 1, -1, 1]


def test_binance_microsecond_timestamps(tmp_path: Path) -> None:
    ms = write(tmp_path / "ms.csv", "\n".join(BINANCE_ROWS))
    # Same trades with transact_time in microseconds (spot files from 2025 on).
    micro_rows = [",".join(f[:5] + [f[5] + "123"] + f[6:]) for f in (r.split(",") for r in BINANCE_ROWS)]
    us = write(tmp_path / "us.csv", "\n".join(micro_rows))
    a, b = read_trades(ms), read_trades(us)
    assert (b["timestamp"] - a["timestamp"] == pd.Timedelta(microseconds=123)).all()
    assert b["timestamp"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20.000123", tz="UTC")


def test_binance_zip_written_here(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-aggTrades-2024-01.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-aggTrades-2024-01.csv", "\n".join(BINANCE_ROWS))
    assert len(read_trades(path)) == 4


def test_zip_with_two_members_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", BINANCE_ROWS[0])
        archive.writestr("b.csv", BINANCE_ROWS[1])
    with pytest.raises(TradeDataError, match="holds 2 files"):
        read_trades(path)


# --- Binance trades ----------------------------------------------------------

SPOT_TRADES_ROWS = [
    "9001,0.5,2.0,1.0,1700000000000,True,True",
    "9002,0.6,1.5,0.9,1700000000100,False,True",
]
UM_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker"
CM_HEADER = "id,price,qty,base_qty,time,is_buyer_maker"


def test_binance_trades_layouts_agree(tmp_path: Path) -> None:
    spot = write(tmp_path / "spot.csv", "\n".join(SPOT_TRADES_ROWS) + "\n")
    um = write(tmp_path / "um.csv", UM_HEADER + "\n" + "\n".join(
        r.rsplit(",", 1)[0].replace("True", "true").replace("False", "false")
        for r in SPOT_TRADES_ROWS))
    # COIN-M: qty counts contracts (100 USD each here), base_qty is the quantity.
    cm = write(tmp_path / "cm.csv", CM_HEADER + "\n"
               "9001,0.5,1,2.0,1700000000000,true\n9002,0.6,1,1.5,1700000000100,false\n")
    frames = [read_trades(path) for path in (spot, um, cm)]
    for path in (spot, um, cm):
        assert detect_format(load_source(path)) == "binance_trades"
    assert_canonical(frames[0])
    assert frames[0]["quantity"].tolist() == [2.0, 1.5]
    assert frames[0]["side"].tolist() == [-1, 1]
    assert frames[0]["trade_id"].tolist() == [9001, 9002]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])


def test_headerless_aggtrades_of_seven_fields_stay_aggtrades(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "\n".join(r.rsplit(",", 1)[0] for r in BINANCE_ROWS))
    assert detect_format(load_source(path)) == "binance_agg"
    assert read_trades(path)["trade_id"].tolist() == [101, 102, 103, 104]


def test_headerless_six_field_trades_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", "9001,0.5,2.0,1.0,1700000000000,true\n")
    with pytest.raises(TradeDataError, match="USD-M .* COIN-M .* add the header line"):
        read_trades(path)


@pytest.mark.parametrize(
    "header",
    [
        "trade_id,px,size,ts,is_buyer_maker",
        "id,price,qty,time,is_buyer_maker",
        "id,price,quote_qty,base_qty,is_buyer_maker",
        "agg_trade_id,price,qty,time,is_buyer_maker",
    ],
)
def test_unknown_binance_header_names_columns_and_layouts(tmp_path: Path, header: str) -> None:
    path = write(tmp_path / "odd.csv", header + "\n1,0.5,2.0,1700000000000,true\n")
    with pytest.raises(TradeDataError) as info:
        read_trades(path)
    text = str(info.value)
    assert text.startswith("odd.csv line 1: header columns ")
    assert repr(header.split(",")) in text
    for layout in ("aggTrades agg_trade_id,price,quantity,",
                   "spot trades (no header) id,price,qty,quote_qty,time,is_buyer_maker,is_best_match",
                   "USD-M trades id,price,qty,quote_qty,time,is_buyer_maker",
                   "COIN-M trades id,price,qty,base_qty,time,is_buyer_maker"):
        assert layout in text


def test_binance_trades_bad_rows_are_named(tmp_path: Path) -> None:
    rows = [*SPOT_TRADES_ROWS, "9003,0.7,1.0,0.7,1700000000200,Maybe,True"]
    with pytest.raises(TradeDataError, match=r"t\.csv line 3: is_buyer_maker 'Maybe' is not a boolean"):
        read_trades(write(tmp_path / "t.csv", "\n".join(rows)))
    text = CM_HEADER + "\n9001,0.5,1,2.0,1700000000000,true\n9002,0.6,1,-1,1700000000100,false\n"
    with pytest.raises(TradeDataError, match=r"c\.csv line 3: quantity '-1' is not positive"):
        read_trades(write(tmp_path / "c.csv", text))


# Every Binance layout read: (header, fields of one trade). A trade is
# (id, time, price, quantity, contracts, is_buyer_maker); spot files spell
# booleans True/False, futures files true/false.
BINANCE_LAYOUTS = {
    "aggTrades spot": (None, lambda t, b: [t[0], t[2], t[3], t[0], t[0], t[1], b, "True"]),
    "aggTrades spot, 7 fields": (None, lambda t, b: [t[0], t[2], t[3], t[0], t[0], t[1], b]),
    "aggTrades futures": (BINANCE_HEADER, lambda t, b: [t[0], t[2], t[3], t[0], t[0], t[1], b.lower()]),
    "aggTrades recorded": ("agg_trade_id,price,quantity,transact_time,is_buyer_maker",
                           lambda t, b: [t[0], t[2], t[3], t[1], b.lower()]),
    "trades spot": (None, lambda t, b: [t[0], t[2], t[3], "1.0", t[1], b, "True"]),
    "trades USD-M": (UM_HEADER, lambda t, b: [t[0], t[2], t[3], "1.0", t[1], b.lower()]),
    "trades COIN-M": (CM_HEADER, lambda t, b: [t[0], t[2], t[4], t[3], t[1], b.lower()]),
}
BINANCE_DECIMAL = st.integers(1, 10**16).map(lambda u: f"{u // 10**8}.{u % 10**8:08d}")


def wrapped(folder: Path, text: str, wrap: str) -> Path:
    if wrap == "gzip":
        path = folder / "t.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    elif wrap == "zip":
        path = folder / "t.zip"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("t.csv", text)
        path.write_bytes(buffer.getvalue())
    else:
        path = write(folder / "t.csv", text)
    return path


@settings(max_examples=50, deadline=None)
@given(
    layout=st.sampled_from(sorted(BINANCE_LAYOUTS)),
    unit=st.sampled_from(["ms", "us"]),
    wrap=st.sampled_from(["plain", "gzip", "zip"]),
    start=st.integers(1_500_000_000_000, 1_800_000_000_000),
    trades=st.lists(
        st.tuples(
            st.integers(0, 2**63 - 1),
            st.integers(0, 5_000),  # time offset: small, so that ties occur
            BINANCE_DECIMAL,
            BINANCE_DECIMAL,
            st.integers(1, 10**6),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_binance_round_trip_every_layout(
    tmp_path_factory: pytest.TempPathFactory, layout: str, unit: str, wrap: str, start: int,
    trades: list[tuple[int, int, str, str, int, bool]],
) -> None:
    scale = {"ms": 1, "us": 1000}[unit]
    times = [start * scale + offset for _, offset, *_ in trades]
    header, fields = BINANCE_LAYOUTS[layout]
    lines = [",".join(map(str, fields((i, t, p, q, c), str(b))))
             for (i, _, p, q, c, b), t in zip(trades, times)]
    text = "".join(f"{line}\n" for line in ([header] if header else []) + lines)
    df = read_trades(wrapped(tmp_path_factory.mktemp("binance"), text, wrap))
    assert_canonical(df)
    # the canonical form: by time, then trade id; a repeated trade id is one trade (first kept)
    order, seen = [], set()
    for i in sorted(range(len(trades)), key=lambda i: (times[i], trades[i][0])):
        if trades[i][0] not in seen:
            seen.add(trades[i][0])
            order.append(i)
    assert df["timestamp"].astype("int64").tolist() == [times[i] * 1_000_000 // scale for i in order]
    assert df["price"].tolist() == [float(trades[i][2]) for i in order]
    assert df["quantity"].tolist() == [float(trades[i][3]) for i in order]
    assert df["side"].tolist() == [-1 if trades[i][5] else 1 for i in order]
    assert df["trade_id"].tolist() == [trades[i][0] for i in order]


# --- ccxt JSON ---------------------------------------------------------------


def test_ccxt_list_of_dicts_matches_list_of_lists(tmp_path: Path) -> None:
    lists = [
        [1700000000000, "7", None, "buy", 10.5, 2.0, 21.0],
        [1700000000500, "8", None, "sell", 10.4, 1.0, 10.4],
    ]
    dicts = [
        {"timestamp": t, "id": i, "type": ty, "side": s, "price": p, "amount": a, "cost": c,
         "datetime": "ignored", "info": {}}
        for t, i, ty, s, p, a, c in lists
    ]
    a = read_trades(write(tmp_path / "lists.json", json.dumps(lists)))
    b = read_trades(write(tmp_path / "dicts.json", json.dumps(dicts)))
    assert_canonical(a)
    pd.testing.assert_frame_equal(a, b)
    assert a["side"].tolist() == [1, -1] and a["trade_id"].tolist() == [7, 8]


def test_ccxt_json_gz_written_here(tmp_path: Path) -> None:
    path = tmp_path / "t.json.gz"
    path.write_bytes(gzip.compress(json.dumps([[1700000000000, "1", None, "buy", 1.0, 1.0, 1.0]]).encode()))
    assert len(read_trades(path)) == 1


# --- generic CSV and Parquet -------------------------------------------------


def test_generic_csv_ms_and_iso_timestamps_agree(tmp_path: Path) -> None:
    ms = write(
        tmp_path / "ms.csv",
        "timestamp,price,quantity,side,trade_id\n"
        "1700000000000,10,1,buy,5\n1700000000250,11,2,sell,6\n",
    )
    iso = write(
        tmp_path / "iso.csv",
        "timestamp,price,amount,side,id\n"
        "2023-11-14T22:13:20Z,10,1,1,5\n2023-11-14 22:13:20.250,11,2,-1,6\n",
    )
    a, b = read_trades(ms), read_trades(iso)
    assert_canonical(a)
    pd.testing.assert_frame_equal(a, b)
    assert a["side"].tolist() == [1, -1]


def test_generic_csv_sorts_stably_and_numbers_rows_without_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "g.csv",
        "timestamp,price,quantity,side\n"
        "1700000000500,3,1,buy\n1700000000000,1,1,buy\n1700000000500,4,1,sell\n1700000000000,2,1,sell\n",
    )
    df = read_trades(path)
    assert df["price"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert df["trade_id"].tolist() == [0, 1, 2, 3]


def test_generic_csv_without_side_infers_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "g.csv", "timestamp,price,quantity\n1,10,1\n2,9,1\n3,9,1\n")
    with caplog.at_level(logging.WARNING, logger="ticker_registry.data"):
        df = read_trades(path)
    assert df["side"].tolist() == [1, -1, -1]
    assert "inferred" in caplog.text


def test_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([1700000000000, 1700000000100], unit="ms", utc=True),
            "price": [10.0, 10.5],
            "quantity": [1.0, 0.5],
            "side": ["buy", "sell"],
            "trade_id": [1, 2],
            "extra": ["x", "y"],
        }
    )
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    df = read_trades(path)
    assert_canonical(df)
    assert df["timestamp"].tolist() == frame["timestamp"].tolist()
    assert df["side"].tolist() == [1, -1] and df["trade_id"].tolist() == [1, 2]
    assert detect_format(load_source(path)) == "parquet"


def test_parquet_bad_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"timestamp": [1700000000000, 1700000000001], "price": [1.0, -2.0],
                  "amount": [1.0, 1.0], "side": [1, -1]}).to_parquet(path)
    with pytest.raises(TradeDataError, match=r"t\.parquet row 2: price -2\.0 is not positive"):
        read_trades(path)


# --- errors ------------------------------------------------------------------


GOOD_LINES = [f"17000000000{i:02d},10.5,1.0,buy" for i in range(5)]


def generic_with(tmp_path: Path, bad_line: str, name: str = "trades.csv") -> Path:
    """A generic CSV whose line 7 (header is line 1) is ``bad_line``."""
    lines = ["timestamp,price,quantity,side", *GOOD_LINES, bad_line, GOOD_LINES[0]]
    return write(tmp_path / name, "\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1700000000099,abc,1.0,buy", "trades.csv line 7: price 'abc' is not a number"),
        ("1700000000099,inf,1.0,buy", "trades.csv line 7: price 'inf' is not a finite number"),
        ("1700000000099,nan,1.0,buy", "trades.csv line 7: price 'nan' is not a finite number"),
        ("1700000000099,10,0,buy", "trades.csv line 7: quantity '0' is not positive"),
        ("1700000000099,10,-3,buy", "trades.csv line 7: quantity '-3' is not positive"),
        ("1700000000099,10,,buy", "trades.csv line 7: quantity '' is not a number"),
        ("yesterday,10,1,buy", "trades.csv line 7: timestamp 'yesterday' is not a valid time"),
        ("-5,10,1,buy", "trades.csv line 7: timestamp '-5' is not a valid time"),
        ("1700000000099,10,1,hold", "trades.csv line 7: side 'hold' is not a side"),
        ("1700000000099,10,1", "trades.csv line 7: expected 4 comma-separated fields"),
        ("1700000000099,10,1,buy,extra", "trades.csv line 7: expected 4 comma-separated fields"),
    ],
)
def test_malformed_row_names_file_line_and_problem(tmp_path: Path, bad_line: str, message: str) -> None:
    with pytest.raises(TradeDataError) as info:
        read_trades(generic_with(tmp_path, bad_line))
    assert message in str(info.value)
    assert "errors='skip'" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "1672531436,90.5,1.1\n\n1672531437,90.6,1.2\n1672531438,90.6,x\n",
        "1672531436,90.5,1.1\r\n\r\n1672531437,90.6,1.2\r\n1672531438,90.6,x\r\n",
        # Quotes could hide newlines, so this one is located by the csv module.
        '"1672531436",90.5,1.1\n\n1672531437,90.6,1.2\n1672531438,90.6,x\n',
    ],
    ids=["lf", "crlf", "quoted"],
)
def test_blank_lines_keep_line_numbers(tmp_path: Path, text: str) -> None:
    path = tmp_path / "k.csv"
    path.write_bytes(text.encode())
    with pytest.raises(TradeDataError, match=r"k\.csv line 4: quantity 'x' is not a number"):
        read_trades(path, fmt="kraken_csv")
    bad_width = text.replace("1672531437,90.6,1.2", "1672531437,90.6")
    path.write_bytes(bad_width.replace(",x", ",1.3").encode())
    with pytest.raises(TradeDataError, match=r"k\.csv line 3: expected 3 comma-separated fields"):
        read_trades(path, fmt="kraken_csv")
    assert len(read_trades(path, fmt="kraken_csv", errors="skip")) == 2


def test_binance_bad_rows_are_named(tmp_path: Path) -> None:
    rows = list(BINANCE_ROWS)
    rows[2] = rows[2].replace("true", "maybe")
    with pytest.raises(TradeDataError, match=r"b\.csv line 3: is_buyer_maker 'maybe' is not a boolean"):
        read_trades(write(tmp_path / "b.csv", "\n".join(rows)))
    headed = BINANCE_HEADER + "\n" + "\n".join(r.rsplit(",", 1)[0] for r in BINANCE_ROWS[:2])
    headed += "\n103,0.6,3.0,4,4,soon,true\n"
    with pytest.raises(TradeDataError, match=r"h\.csv line 4: timestamp 'soon'"):
        read_trades(write(tmp_path / "h.csv", headed))


def test_json_bad_record_is_named(tmp_path: Path) -> None:
    records = [[1700000000000, "1", None, "buy", 1.0, 1.0, 1.0], [1700000000000, "2", None, "buy"]]
    with pytest.raises(TradeDataError, match=r"j\.json record 2: expected a list of 7 fields"):
        read_trades(write(tmp_path / "j.json", json.dumps(records)))
    records[1] = [1700000000000, "2", None, "buy", "cheap", 1.0, 1.0]
    with pytest.raises(TradeDataError, match=r"j\.json record 2: price 'cheap' is not a number"):
        read_trades(write(tmp_path / "j.json", json.dumps(records)))


def test_invalid_json_is_a_trade_data_error(tmp_path: Path) -> None:
    with pytest.raises(TradeDataError, match=r"t\.json line 1: not valid JSON"):
        read_trades(write(tmp_path / "t.json", '[[1700000000000, "1", null, "buy", 1.0'))


def test_skip_drops_and_counts_malformed_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = ["timestamp,price,quantity,side", GOOD_LINES[0], "1700000000001,abc,1,buy",
             GOOD_LINES[1], "1700000000002,10,1", "1700000000003,10,1,hold", GOOD_LINES[2]]
    path = write(tmp_path / "s.csv", "\n".join(lines))
    with caplog.at_level(logging.WARNING, logger="ticker_registry.data"):
        df = read_trades(path, errors="skip")
    assert_canonical(df)
    assert len(df) == 3
    assert df.attrs["skipped_rows"] == 3
    assert "skipped 3 malformed" in caplog.text and "s.csv line 3" in caplog.text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TradeDataError, match="does not exist"):
        read_trades(tmp_path / "nope.csv")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(TradeDataError, match="is empty"):
        read_trades(write(tmp_path / "e.csv", ""))
    with pytest.raises(TradeDataError, match="is empty"):
        read_trades(write(tmp_path / "w.csv", " \n\n"))


def test_header_only_has_no_trades(tmp_path: Path) -> None:
    with pytest.raises(TradeDataError, match="holds no valid trades"):
        read_trades(write(tmp_path / "h.csv", "timestamp,price,quantity,side\n"))


def test_all_rows_skipped_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "timestamp,price,quantity,side\n1,x,1,buy\n2,y,1,buy\n")
    with pytest.raises(TradeDataError, match="holds no valid trades; all 2 line"):
        read_trades(path, errors="skip")


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x00\x01\x02 not trades")
    with pytest.raises(TradeDataError) as info:
        read_trades(path)
    text = str(info.value)
    assert "cannot tell the format of 'x.bin'" in text
    assert "binance_agg" in text and "kraken_csv" in text and "fmt=" in text


def test_bad_arguments(tmp_path: Path) -> None:
    path = write(tmp_path / "k.csv", "1672531436,90.5,1.1\n")
    with pytest.raises(TradeDataError, match="unknown trade format fmt='csv'"):
        read_trades(path, fmt="csv")
    with pytest.raises(TradeDataError, match="errors='ignore' is not supported"):
        read_trades(path, errors="ignore")


def test_explicit_fmt_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path / "weird.dat", "1672531436,90.5,1.1\n1672531437,90.6,1.2\n")
    assert len(read_trades(path, fmt="kraken_csv")) == 2
    with pytest.raises(TradeDataError, match="expected 7 or 8 Binance aggTrades fields"):
        read_trades(path, fmt="binance_agg")
    with pytest.raises(TradeDataError, match="expected 7 Binance spot trades fields"):
        read_trades(path, fmt="binance_trades")


def many_binance_rows(n: int = 3000) -> str:
    """Headerless aggTrades rows varied enough that they compress to well over 5 kB."""
    rng = np.random.default_rng(0)
    prices = rng.uniform(0.001, 0.002, n)
    quantities = rng.uniform(1, 1000, n)
    return "".join(
        f"{i},{p:.8f},{q:.2f},{i},{i},{1570752011620 + 37 * i},{bool(i % 3)},True\n"
        for i, (p, q) in enumerate(zip(prices, quantities))
    )


@pytest.fixture
def binance_zip(tmp_path: Path) -> Path:
    path = tmp_path / "XYZ-aggTrades.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("XYZ-aggTrades.csv", many_binance_rows())
    assert len(read_trades(path)) == 3000
    return path


def test_truncated_gzip(tmp_path: Path) -> None:
    whole = gzip.compress(many_binance_rows().encode())
    assert len(whole) > 10_000
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[:5000])
    with pytest.raises(TradeDataError, match="truncated gzip"):
        read_trades(path)


def test_truncated_zip(tmp_path: Path, binance_zip: Path) -> None:
    path = tmp_path / "cut.zip"
    path.write_bytes(binance_zip.read_bytes()[:5000])
    with pytest.raises(TradeDataError, match="truncated zip"):
        read_trades(path)


def test_corrupted_zip_member(tmp_path: Path, binance_zip: Path) -> None:
    data = bytearray(binance_zip.read_bytes())
    data[1000:1010] = b"\x00" * 10  # damages the deflate stream, CRC no longer matches
    path = tmp_path / "bad.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(TradeDataError, match="zip"):
        read_trades(path)


# --- properties --------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.integers(1_500_000_000_000, 1_800_000_000_000),
            st.floats(1e-6, 1e6),
            st.floats(1e-6, 1e6),
            st.sampled_from(["buy", "sell"]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_generic_csv_round_trip(tmp_path: Path, rows: list[tuple[int, float, float, str]]) -> None:
    path = tmp_path / "rt.csv"
    body = "".join(f"{t},{p!r},{q!r},{s}\n" for t, p, q, s in rows)
    write(path, "timestamp,price,quantity,side\n" + body)
    df = read_trades(path)
    assert_canonical(df)
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])  # Python's sort is stable
    assert df["timestamp"].tolist() == [pd.Timestamp(rows[i][0], unit="ms", tz="UTC") for i in order]
    assert df["price"].tolist() == [rows[i][1] for i in order]
    assert df["quantity"].tolist() == [rows[i][2] for i in order]
    assert df["side"].tolist() == [1 if rows[i][3] == "buy" else -1 for i in order]




def read_or_error(path: Path) -> None:
    try:
        df = read_trades(path)
    except TradeDataError:
        return
    assert_canonical(df)
    assert len(df) > 0


CSV_ALPHABET = "0123456789,.-+eE \n\r\"truefalsTRUEFALSbuyselnaif:TZ[]{}"
CSVISH_LINE = st.lists(
    st.one_of(
        st.integers(min_value=-(10**20), max_value=10**20).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["buy", "sell", "True", "false", "", "1", "-1", "2024-01-01T00:00:00Z"]),
        st.text(alphabet=CSV_ALPHABET, max_size=12),
    ),
    min_size=1,
    max_size=9,
).map(",".join)
HEADERS = st.sampled_from(
    [
        "",
        "timestamp,price,quantity,side\n",
        BINANCE_HEADER + "\n",
        ",timestamp,id,type,side,price,amount,cost,date\n",
    ]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), name=st.sampled_from(["x.csv", "x.json", "x.gz", "x.zip", "x.parquet"]))
def test_random_bytes_give_frame_or_trade_data_error(tmp_path: Path, data: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    read_or_error(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=HEADERS, lines=st.lists(CSVISH_LINE, min_size=0, max_size=8))
def test_random_csvish_text_gives_frame_or_trade_data_error(
    tmp_path: Path, header: str, lines: list[str]
) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_text(header + "\n".join(lines), encoding="utf-8")
    read_or_error(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(
        st.lists(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                      st.sampled_from(["buy", "sell"]), st.lists(st.integers(), max_size=2),
                      st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)),
            min_size=6, max_size=8,
        ),
        min_size=1, max_size=5,
    )
)
def test_random_json_records_give_frame_or_trade_data_error(tmp_path: Path, records: list) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    read_or_error(path)
