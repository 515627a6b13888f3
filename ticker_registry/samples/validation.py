"""Validation of one training sample against the feature spec (:func:`validate_sample`).

Pure checks, no I/O: :class:`~ticker_registry.samples.SampleStore` and the
manager call them before anything is written. :func:`positive_int` checks the
store's id and version arguments.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import SampleValidationError
from ..features import FEATURE_NAMES, FLOW_TYPES

__all__ = ["validate_sample"]

_N = len(FEATURE_NAMES)
_FLOW_HELP = (f"use one of {', '.join(map(repr, FLOW_TYPES))} "
              f"or their codes 0..{len(FLOW_TYPES) - 1}")


def positive_int(value: Any, what: str, *, low: int = 1) -> int:
    """``value`` as an int >= ``low`` (not bool), or ValueError naming ``what``."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
            or value < low):
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


def _number(value: Any, what: str, rule: str) -> float:
    """``value`` as a finite float, or SampleValidationError naming ``what``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise SampleValidationError(
            f"{what} is {value!r} ({type(value).__name__}); {rule}")
    try:
        out = float(value)
    except (OverflowError, ValueError):
        out = math.inf
    if not math.isfinite(out):
        raise SampleValidationError(f"{what} is {value!r}; {rule}")
    return out


def _feature_values(features: Any) -> list[Any]:
    """The raw feature values in FEATURE_NAMES order (names checked, values not)."""
    if isinstance(features, pd.DataFrame):
        if len(features) != 1:
            raise SampleValidationError(
                f"features DataFrame has {len(features)} rows; pass exactly one row with the "
                f"{_N} FEATURE_NAMES columns")
        features = {k: features[k].iloc[0] for k in features.columns}
    elif isinstance(features, pd.Series):
        if features.index.has_duplicates:
            repeated = sorted({str(k) for k in features.index[features.index.duplicated()]})[:5]
            raise SampleValidationError(
                f"features Series repeats the label(s) {repeated!r}; give each of the {_N} "
                "FEATURE_NAMES once")
        features = dict(features.items())
    if isinstance(features, Mapping):
        if len(features) > 4 * _N:
            raise SampleValidationError(
                f"features mapping has {len(features):,} keys; give exactly the {_N} names of "
                "FEATURE_NAMES")
        names = list(features)
        missing = [n for n in FEATURE_NAMES if n not in features]
        extra = [n for n in names if n not in FEATURE_NAMES]
        if missing or extra:
            raise SampleValidationError(
                f"features do not match the feature spec: missing {missing!r:.300}, unexpected "
                f"{extra!r:.300}; give exactly the {_N} names of FEATURE_NAMES (any order)")
        return [features[n] for n in FEATURE_NAMES]
    if isinstance(features, np.ndarray):
        if features.ndim != 1 or features.shape[0] != _N:
            raise SampleValidationError(
                f"features array has shape {features.shape!r}; expected a 1-D array of {_N} "
                "values in FEATURE_NAMES order")
        return list(features)  # numpy scalars: np.bool_ and np.str_ are refused per value
    if isinstance(features, (list, tuple)):
        if len(features) != _N:
            raise SampleValidationError(
                f"features has {len(features)} values; expected {_N} in FEATURE_NAMES order "
                "(or a mapping of feature name to value)")
        return list(features)
    raise SampleValidationError(
        f"features is a {type(features).__name__} ({features!r:.80}); pass a mapping of feature "
        f"name to value, a sequence or 1-D array of {_N} numbers, or a one-row DataFrame")


def validate_sample(features: Any, flow_type: Any, impact: Any,
                    time_to_execution: Any) -> tuple[np.ndarray, int, float, float]:
    """Check one training sample against the feature spec and return it normalised.

    Parameters
    ----------
    features
        A mapping of exactly the ``FEATURE_NAMES`` (any order), a sequence or
        1-D array of ``len(FEATURE_NAMES)`` values in that order, or a one-row
        DataFrame / a Series labelled by those names. Values must be finite
        real numbers (not bool).
    flow_type
        One of ``FLOW_TYPES`` or its integer code.
    impact
        A finite number.
    time_to_execution
        A finite number >= 0 (seconds).

    Returns
    -------
    tuple
        ``(features as float64 array in FEATURE_NAMES order, flow code, impact,
        time_to_execution)``.

    Raises
    ------
    SampleValidationError
        Naming the field, the bad value and the expected form.
    """
    values = _feature_values(features)
    vector = np.empty(_N, dtype=np.float64)
    for i, (name, value) in enumerate(zip(FEATURE_NAMES, values, strict=True)):
        vector[i] = _number(value, f"feature {name!r}",
                            "every feature must be a finite real number (not bool or text)")
    if isinstance(flow_type, str):
        if flow_type not in FLOW_TYPES:
            raise SampleValidationError(f"flow_type {flow_type!r} is not a flow type; {_FLOW_HELP}")
        code = FLOW_TYPES.index(flow_type)
    elif isinstance(flow_type, (int, np.integer)) and not isinstance(flow_type, (bool, np.bool_)):
        if not 0 <= int(flow_type) < len(FLOW_TYPES):
            raise SampleValidationError(
                f"flow_type code {flow_type!r} is out of range; {_FLOW_HELP}")
        code = int(flow_type)
    else:
        raise SampleValidationError(
            f"flow_type is {flow_type!r} ({type(flow_type).__name__}); {_FLOW_HELP}")
    impact_f = _number(impact, "impact", "impact must be a finite number")
    tte = _number(time_to_execution, "time_to_execution",
                  "time_to_execution must be a finite number of seconds >= 0")
    if tte < 0:
        raise SampleValidationError(
            f"time_to_execution is {time_to_execution!r}; "
            "it must be a finite number of seconds >= 0")
    return vector, code, impact_f, tte
