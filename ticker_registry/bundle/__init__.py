"""Export and import of one model version as a self-contained bundle file.

A bundle is a tar archive, gzip-compressed when we write it (an uncompressed
tar is read too). Its file name is the user's choice; the content decides::

    ETHUSDT-v3.trbundle                 (or ethusdt_model_backup.pkl: any name)
    └── gzip ─ tar, read member by member ("r|"), never extracted by tarfile
        ├── manifest.json               first member, JSON, at most 1 MiB:
        │     format, format_version, ticker, model_name, model_version,
        │     model_type, source_registry (no password), run_id, created_at,
        │     params, metrics, tags, description, lineage, idempotency_key,
        │     package_versions, exported_with,
        │     members: [{name, size, sha256}, ...]   (every other member)
        ├── model/model.json            the OrderFlowModel manifest (metrics travel here)
        ├── model/flow_type.<ext>       native heads: .ubj (XGBoost), .txt (LightGBM)
        ├── model/impact.<ext>          or .skops (random forest); never a pickle,
        └── model/time_to_execution.<ext>   never MLmodel or a .py wrapper

Writing is deterministic (fixed order, fixed mtime, no owner, no export
time), so exporting the same version twice gives the same bytes and the same
sha256, which is the import idempotency key (``import-<first 24 hex>``).

Import verifies everything before anything reaches the registry:

1. the file: a regular file of at most :data:`MAX_BUNDLE_BYTES`; anything
   else (a pickle, a zip, text, nothing) is named and refused;
2. the manifest: our format and :data:`BUNDLE_FORMAT_VERSION`, strict fields
   (an unknown one, e.g. a trust list, is refused), at most
   :data:`MAX_MEMBERS` members whose names come from our own allow-list for
   the model type, sizes within :data:`MAX_MEMBER_BYTES` / :data:`MAX_TOTAL_BYTES`;
3. each tar member as it streams: a regular file (no link, device, FIFO or
   directory), a safe relative name listed in the manifest and seen once, the
   declared size, no pickle header, the expected magic bytes, the manifest's
   sha256. Decompressed bytes are counted as they are read (headers can lie):
   never more than the manifest declares, never more than
   :data:`MAX_COMPRESSION_RATIO` times the compressed bytes read;
4. the files, written by our code under our own names into a fresh private
   (0700) temporary directory, are loaded and test-predicted on a zero
   feature row in a separate, lean Python process with a timeout per check
   (started once per process and reused, replaced after any failure:
   :mod:`.checker`), after bounded checks made before a native library parses
   them (:mod:`.trees`, limits in
   :mod:`.limits`: tree count, node count and depth from the hyperparameter
   bounds, children in range, one parent each, every node reachable; a skops
   zip's directory, entry sizes, compression ratios and schema size; skops
   types within :data:`~ticker_registry.heads.SKOPS_TRUSTED`): a crafted tree
   file can crash, hang or exhaust the memory of the process that loads it.

Metrics (finite, bounded, at most :data:`~.limits.MAX_METRICS`), the feature
spec, and every tag, param and metric key an import would write (MLflow's key
rules, no reserved ``mlflow.`` namespace: :mod:`.keys`) are checked in steps 2
and 4, before the first write.

Only then is a new version registered (with our own pyfunc wrapper, never a
file of the bundle) and the promotion gate applied.

The package, one module per responsibility:

- :mod:`.manifest`: format constants, caps, member allow-lists and the strict
  ``manifest.json`` records (:class:`BundleManifest`, :class:`BundleMember`);
- :mod:`.reader`: streaming verification of a bundle file (steps 1-3, :func:`verify_bundle`);
- :mod:`.writer`: :func:`export_bundle` and :func:`export_all`;
- :mod:`.importer`: :func:`import_bundle`, registration with lineage and tags;
- :mod:`.check`: the test load (step 4) as the child runs it, also run as
  ``python -m ticker_registry.bundle --check DIR``;
- :mod:`.checker`: the reused child that runs it: start, bounds, replacement;
- :mod:`.trees`, :mod:`.ubjson`: the bounded checks of the head files it runs first;
- :mod:`.limits`: every content limit and what it is derived from;
- :mod:`.keys`: MLflow key rules, metric and feature-spec checks.
"""

from __future__ import annotations

from ..redaction import redact_uri as redact_uri

# Names outside __all__ stay importable from here as before the split: redact_uri
# (maintenance), check_in_subprocess and _import_tags (tests), _check_main, and the
# format constants and helpers of the former single module.
from .check import _check_main as _check_main
from .check import check_model_directory as check_model_directory
from .checker import CHECK_TIMEOUT as CHECK_TIMEOUT
from .checker import check_in_subprocess as check_in_subprocess
from .importer import ImportResult, import_bundle
from .importer import _import_tags as _import_tags
from .manifest import BUNDLE_FORMAT as BUNDLE_FORMAT
from .manifest import (
    BUNDLE_FORMAT_VERSION,
    MAX_BUNDLE_BYTES,
    MAX_COMPRESSION_RATIO,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_TOTAL_BYTES,
    BundleManifest,
    BundleMember,
)
from .manifest import MANIFEST_NAME as MANIFEST_NAME
from .manifest import MAX_MANIFEST_BYTES as MAX_MANIFEST_BYTES
from .manifest import RATIO_GRACE_BYTES as RATIO_GRACE_BYTES
from .manifest import allowed_members as allowed_members
from .manifest import unsafe_name as unsafe_name
from .reader import verify_bundle
from .writer import ExportResult, export_all, export_bundle

__all__ = [
    "BUNDLE_FORMAT_VERSION", "MAX_BUNDLE_BYTES", "MAX_COMPRESSION_RATIO", "MAX_MEMBERS",
    "MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES", "BundleManifest", "BundleMember", "ExportResult",
    "ImportResult", "export_all", "export_bundle", "import_bundle", "verify_bundle",
]

