"""What a bundle may make us write: MLflow-valid keys outside reserved namespaces, sane metrics.

A bundle's tags, lineage and metrics become tags, params and metrics of a new
run and model version. MLflow refuses some keys only when they are written, by
which point a run may already exist; and it accepts some keys that change what
a version is (``mlflow.prompt.is_prompt`` makes it a prompt). So every key an
import would write, and every metric, is checked here first, and a refusal
names the key.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..features import FLOW_TYPES, FeatureSpec
from .limits import MAX_KEY_CHARS, MAX_METRIC_MAGNITUDE, MAX_METRICS, RESERVED_KEY_PREFIXES

__all__ = ["key_problem", "metrics_problem", "spec_problem"]

#: MLflow's characters for tag, param and metric names (ASCII here: ours are).
_KEY = re.compile(r"^[A-Za-z0-9_\-. /]+$")
#: The metric names we write: a letter, then letters, digits, ``_ . -``.
_METRIC_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")


def key_problem(key: Any) -> str | None:
    """Why MLflow would refuse ``key`` as a tag, param or metric name, or why we do; else None.

    MLflow's rules: letters, digits, ``_ - . space /``; at most 250 characters; a name
    that is also a safe relative path (no ``..``, no leading ``/``, no ``//`` or ``./``).
    Ours on top: no ``..`` anywhere, and no reserved prefix (:data:`RESERVED_KEY_PREFIXES`).
    """
    if not isinstance(key, str) or not key:
        return "is not a non-empty string"
    if len(key) > MAX_KEY_CHARS:
        return f"is {len(key)} characters long (MLflow's limit is {MAX_KEY_CHARS})"
    if not _KEY.match(key):
        return "holds characters MLflow refuses (allowed: letters, digits, _ - . space /)"
    if ".." in key or key.startswith("/") or posixpath.normpath(key) != key:
        return "is not a plain relative name (MLflow refuses '..', a leading '/', '//', './')"
    if key.startswith(RESERVED_KEY_PREFIXES):
        return (f"is in a namespace MLflow reserves ({', '.join(RESERVED_KEY_PREFIXES)}); a "
                "bundle may not write it")
    return None


def metrics_problem(metrics: Any, where: str) -> str | None:
    """Why ``metrics`` is not a map of at most :data:`MAX_METRICS` finite, bounded numbers under
    well-formed names; else None."""
    if not isinstance(metrics, Mapping):
        return f"{where} is not a map of metrics"
    if len(metrics) > MAX_METRICS:
        return (f"{where} holds {len(metrics):,} metrics; a bundle carries at most {MAX_METRICS} "
                "(MAX_METRICS)")
    for key, value in metrics.items():
        problem = key_problem(key)
        if problem is None and not _METRIC_KEY.match(key):
            problem = "is not a metric name (a letter, then letters, digits, _ . -)"
        if problem:
            return f"{where} key {str(key)[:80]!r} {problem}"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"{where} {key!r} is {str(value)[:40]!r}, not a number"
        if not math.isfinite(value) or abs(value) > MAX_METRIC_MAGNITUDE:
            return (f"{where} {key!r} is {value:g}; a metric must be finite and at most "
                    f"{MAX_METRIC_MAGNITUDE:g} in magnitude (MAX_METRIC_MAGNITUDE)")
    return None


def first_bad_key(keys: Iterable[str], what: str) -> str | None:
    """The refusal of the first key of ``keys`` with a :func:`key_problem`, naming it; or None."""
    for key in keys:
        problem = key_problem(key)
        if problem:
            return f"{what} key {str(key)[:80]!r} {problem}"
    return None


def spec_problem(spec: Any, config: Mapping[str, Any], where: str) -> str | None:
    """Why ``model.json``'s ``feature_spec`` cannot be a recipe we compute; else None.

    Its numbers are held to the bounds of the same :class:`~ticker_registry.config.Config`
    fields (a negative window, a zero horizon or a NaN threshold is refused).
    """
    from ..config import Config
    from ..exceptions import ConfigError

    if not isinstance(spec, dict):
        return f"{where} 'feature_spec' is not an object"
    fields = set(FeatureSpec.__dataclass_fields__)
    if set(spec) != fields:
        return (f"{where} 'feature_spec' has fields {sorted(spec)}; expected {sorted(fields)}")
    if tuple(spec["flow_types"] or ()) != FLOW_TYPES or spec["version"] != FeatureSpec.version:
        return (f"{where} 'feature_spec' is version {spec['version']!r} with flow types "
                f"{spec['flow_types']!r}; this ticker-registry computes version "
                f"{FeatureSpec.version} with {list(FLOW_TYPES)}")
    numbers = {k: spec[k] for k in ("sequence_length", "prediction_horizon",
                                    "large_order_threshold", "flow_band")}
    for key, value in numbers.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                not math.isfinite(value):
            return f"{where} 'feature_spec' {key} is {value!r}, not a finite number"
    try:
        Config.from_dict({**config, **numbers}, source=f"{where} feature_spec")
    except (ConfigError, ValueError, TypeError) as exc:
        return str(exc).splitlines()[0][:300]
    return None
