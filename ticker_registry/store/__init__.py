"""The boundary to MLflow: the only package that imports ``mlflow``.

- :mod:`.adapter`: :class:`MlflowStore`, narrow methods over runs, versions, aliases,
  tags, searches, logged models and artifacts, returning our records;
- :mod:`.retry`: retries (tenacity) and the translation of MLflow / SQLAlchemy /
  connection errors into :mod:`ticker_registry.exceptions`;
- :mod:`.runs`: one training as a run and a LoggedModel;
- :mod:`.packaging`: a version's pyfunc directory ("models from code");
- :mod:`.pyfunc_model`: the wrapper MLflow runs when it loads a version (shipped
  with each version, imports nothing of this package).
"""

from .adapter import ARTIFACT_ROOT, DEFAULT_MODELS_DIR, MlflowStore, resolve_tracking_uri

__all__ = ["ARTIFACT_ROOT", "DEFAULT_MODELS_DIR", "MlflowStore", "resolve_tracking_uri"]
