"""ticker-registry: one order-flow model per trading symbol, managed through MLflow's registry.

Everything importable from this module is the public API; the names are listed
in ``__all__`` and nothing else is public.
"""

from __future__ import annotations

from .cache import ServedModel
from .config import MODEL_TYPES, Config, load_config
from .data import read_trades
from .exceptions import (
    BundleError,
    ConfigError,
    DiskFullError,
    InvalidArgumentError,
    InvalidTickerError,
    ModelFormatError,
    ModelNotFoundError,
    NotTrainedError,
    PredictionInputError,
    PredictionTimeoutError,
    PromotionConflictError,
    RegistryError,
    RegistryUnavailableError,
    RollbackError,
    SampleValidationError,
    StoreError,
    TickerRegistryError,
    TimestampError,
    TradeDataError,
    TrainingDataError,
)
from .features import FEATURE_NAMES, FLOW_TYPES, FeatureSpec
from .manager import SyncTickerModelManager
from .manager_async import TickerModelManager
from .model import OrderFlowModel
from .records import (
    AuditEvent,
    PreloadResult,
    PromotionDecision,
    TrainingLineage,
    TrainOutcome,
    VersionInfo,
)
from .registry import TickerRegistry
from .report import write_report
from .samples import SampleStore
from .strategy import OrderFlowTradingStrategy
from .synthetic import generate_trades
from .tickers import normalize_ticker
from .training import build_training_set, compute_live_features  # config in any form
from .tuning import TuningResult

__version__ = "0.1.0"

__all__ = [
    "VersionInfo",
    "TrainingLineage",
    "ServedModel",
    "PromotionDecision",
    "AuditEvent",
    "FEATURE_NAMES",
    "FLOW_TYPES",
    "MODEL_TYPES",
    "BundleError",
    "Config",
    "ConfigError",
    "DiskFullError",
    "FeatureSpec",
    "InvalidArgumentError",
    "InvalidTickerError",
    "ModelFormatError",
    "ModelNotFoundError",
    "NotTrainedError",
    "OrderFlowModel",
    "OrderFlowTradingStrategy",
    "PredictionInputError",
    "PredictionTimeoutError",
    "PreloadResult",
    "PromotionConflictError",
    "RegistryError",
    "RegistryUnavailableError",
    "RollbackError",
    "SampleStore",
    "SampleValidationError",
    "StoreError",
    "SyncTickerModelManager",
    "TickerModelManager",
    "TickerRegistry",
    "TickerRegistryError",
    "TimestampError",
    "TradeDataError",
    "TrainOutcome",
    "TrainingDataError",
    "TuningResult",
    "__version__",
    "build_training_set",
    "compute_live_features",
    "generate_trades",
    "load_config",
    "normalize_ticker",
    "read_trades",
    "write_report",
]
