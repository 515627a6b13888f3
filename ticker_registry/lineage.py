"""What a version records about the ticker's training history: its running totals.

A version carries ``totals.training_sessions`` and ``totals.total_samples``:
the ticker's counts up to and including it, computed once under the ticker's
write lock from the newest earlier version. Nothing is read-modify-written
afterwards, so the seed's ``training_sessions`` / ``total_samples`` (the newest
version's totals) do not drift when versions are cleaned up or imported, and
``last_trained`` is the newest version's creation time.
"""

from __future__ import annotations

from .records import VersionInfo

__all__ = ["SAMPLES_TAG", "SESSIONS_TAG", "next_totals", "training_totals"]

#: Version tags with the ticker's running totals up to and including that version.
SESSIONS_TAG = "totals.training_sessions"
SAMPLES_TAG = "totals.total_samples"


def training_totals(info: VersionInfo | None, fallback: dict[str, str] | None = None
                    ) -> tuple[int, int]:
    """``(training_sessions, total_samples)`` up to ``info``.

    Each version records the running totals when it is registered (the previous
    newest version's plus its own), so they are written once and never drift;
    versions registered before carry none, and the registered model's old
    counter tags (``fallback``) stand in.
    """
    return _totals(info.tags if info is not None else {}, fallback)


def _totals(tags: dict[str, str], fallback: dict[str, str] | None) -> tuple[int, int]:
    source = tags if SESSIONS_TAG in tags else {
        SESSIONS_TAG: (fallback or {}).get("training_sessions", "0"),
        SAMPLES_TAG: (fallback or {}).get("total_samples", "0")}
    try:
        return int(source[SESSIONS_TAG] or 0), int(source[SAMPLES_TAG] or 0)
    except ValueError:
        return 0, 0


def next_totals(newest: dict[str, str] | None, n_samples: int,
                fallback: dict[str, str] | None = None) -> dict[str, str]:
    """The totals tags of a new version trained on ``n_samples`` after the version whose tags
    are ``newest`` (None: the first version)."""
    sessions, samples = _totals(newest or {}, fallback)
    return {SESSIONS_TAG: str(sessions + 1), SAMPLES_TAG: str(samples + int(n_samples))}
