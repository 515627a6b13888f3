"""The one error tree of ticker-registry.

This module imports nothing, so it ships inside every model version with the
serving code (see :mod:`ticker_registry.served`).

Every error the library raises on purpose derives from ``TickerRegistryError``;
callers can catch that one class. Errors about a bad value also derive from
``ValueError`` so code that expects the builtin keeps working::

    TickerRegistryError
    ├── InvalidArgumentError (ValueError)     an argument the call does not accept
    │                                         (unknown alias, keep_last < 1, a bad key)
    ├── ConfigError (ValueError)              bad config key, type or value
    ├── InvalidTickerError (ValueError)       a ticker that is not a safe symbol
    ├── TradeDataError (ValueError)           unreadable or malformed trade file
    │   └── TimestampError                    a time that is not a valid epoch or ISO time
    ├── TrainingDataError (ValueError)        too few / constant training rows
    ├── SampleValidationError (ValueError)    a training sample that does not fit the spec
    ├── NotTrainedError (ValueError, AttributeError)
    │                                         predict on a model that was never fitted
    ├── PredictionInputError (ValueError)     a prediction request whose columns or values do not
    │                                         fit the model (missing column, NaN, too few trades)
    ├── PredictionTimeoutError (TimeoutError) no prediction within ``predict_timeout`` (a cold load
    │                                         that took longer; it goes on in the background)
    ├── ModelFormatError                      a saved model directory that is not ours or is broken
    ├── RegistryError                         any failure talking to the MLflow registry
    │   ├── RegistryUnavailableError          the tracking server / database cannot be reached
    │   ├── ModelNotFoundError (LookupError)  unknown ticker or version
    │   ├── PromotionConflictError            compare-and-set lost: the alias moved meanwhile
    │   └── RollbackError                     no earlier production version / refused target
    ├── BundleError                           an export bundle that failed verification
    └── StoreError                            the durable sample store failed
        └── DiskFullError                     a disk filled up while writing (model files): names
                                              the path and the space needed; nothing is left behind
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ConfigError",
    "DiskFullError",
    "InvalidArgumentError",
    "InvalidTickerError",
    "ModelFormatError",
    "ModelNotFoundError",
    "NotTrainedError",
    "PredictionInputError",
    "PredictionTimeoutError",
    "PromotionConflictError",
    "RegistryError",
    "RegistryUnavailableError",
    "RollbackError",
    "SampleValidationError",
    "StoreError",
    "TickerRegistryError",
    "TimestampError",
    "TradeDataError",
    "TrainingDataError",
]


class TickerRegistryError(Exception):
    """Base class of every error raised on purpose by ticker-registry."""


class InvalidArgumentError(TickerRegistryError, ValueError):
    """An argument the call does not accept (as scikit-learn's parameter errors are ValueErrors)."""


class ConfigError(TickerRegistryError, ValueError):
    """A config key is unknown, has the wrong type, or is out of range."""


class InvalidTickerError(TickerRegistryError, ValueError):
    """A ticker symbol is empty, unsafe or not plain ASCII."""


class TradeDataError(TickerRegistryError, ValueError):
    """A trade file cannot be read or holds malformed rows."""


class TimestampError(TradeDataError):
    """A time is not a valid epoch (s/ms/us/ns after 1970) or ISO-8601 time."""


class TrainingDataError(TickerRegistryError, ValueError):
    """The training set cannot train a model (too small, constant, not finite)."""


class SampleValidationError(TickerRegistryError, ValueError):
    """A training sample does not match the feature spec."""


class NotTrainedError(TickerRegistryError, ValueError, AttributeError):
    """A prediction was asked of a model that has not been fitted."""


class PredictionInputError(TickerRegistryError, ValueError):
    """A prediction request does not fit the model: a column is missing, a value is not finite."""


class PredictionTimeoutError(TickerRegistryError, TimeoutError):
    """No prediction within the ``predict_timeout`` budget (the builtin ``TimeoutError`` too)."""


class ModelFormatError(TickerRegistryError):
    """A saved model directory is missing files or is not in our format."""


class RegistryError(TickerRegistryError):
    """A registry operation failed."""


class RegistryUnavailableError(RegistryError):
    """The tracking server or registry database cannot be reached."""


class ModelNotFoundError(RegistryError, LookupError):
    """The ticker, version or alias does not exist in the registry."""


class PromotionConflictError(RegistryError):
    """An alias moved since the caller read it (compare-and-set lost)."""


class RollbackError(RegistryError):
    """A rollback target does not exist or is not allowed."""


class BundleError(TickerRegistryError):
    """An export bundle is malformed, unsafe or fails verification."""


class StoreError(TickerRegistryError):
    """The durable sample store cannot be read or written."""


class DiskFullError(StoreError):
    """A disk filled up while writing; the message names the path and the space needed."""
