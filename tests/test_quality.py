"""House rules that CI keeps: one public surface, ruff and mypy clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ticker_registry

ROOT = Path(__file__).resolve().parents[1]

#: The public API. Changing it is a decision: update this list with it.
PUBLIC = {
    "FEATURE_NAMES", "FLOW_TYPES", "MODEL_TYPES", "BundleError", "Config", "ConfigError",
    "FeatureSpec", "TimestampError", "InvalidTickerError", "ModelFormatError", "ModelNotFoundError",
    "NotTrainedError", "OrderFlowModel", "OrderFlowTradingStrategy", "PredictionInputError",
    "PreloadResult",
    "PromotionConflictError", "RegistryError", "RegistryUnavailableError", "RollbackError",
    "SampleStore", "SampleValidationError", "StoreError", "SyncTickerModelManager",
    "TickerModelManager", "TickerRegistry", "TickerRegistryError", "TradeDataError",
    "TrainOutcome", "TrainingDataError", "__version__", "build_training_set",
    "compute_live_features", "generate_trades", "load_config", "normalize_ticker", "read_trades",
    "write_report", "AuditEvent", "PromotionDecision", "ServedModel", "TrainingLineage",
    "VersionInfo", "InvalidArgumentError", "DiskFullError", "PredictionTimeoutError",
    "TuningResult",
}


def test_exported_members_are_the_public_api():
    assert set(ticker_registry.__all__) == PUBLIC
    assert len(ticker_registry.__all__) == len(set(ticker_registry.__all__))
    for name in ticker_registry.__all__:
        assert hasattr(ticker_registry, name), name


def test_every_error_derives_from_the_base():
    from ticker_registry import exceptions

    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), exceptions.TickerRegistryError)


def _tool(name: str) -> list[str]:
    binary = Path(sys.executable).parent / name
    if not binary.exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return [str(binary)]


def test_ruff_is_clean():
    result = subprocess.run([*_tool("ruff"), "check", "ticker_registry", "tests", "benchmarks",
                             "scripts"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.slow
def test_mypy_is_clean():
    result = subprocess.run([*_tool("mypy"), "ticker_registry"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
