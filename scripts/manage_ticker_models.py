#!/usr/bin/env python
"""Seed-compatible management script, mapped onto ticker-registry's library calls.

    python scripts/manage_ticker_models.py --action status
    python scripts/manage_ticker_models.py --action export --ticker ETHUSDT --file ethusdt_model_backup.pkl
    python scripts/manage_ticker_models.py --action import --file ethusdt_model_backup.pkl
    python scripts/manage_ticker_models.py --action preload --tickers ETHUSDT BTCUSDT ADAUSDT
    python scripts/manage_ticker_models.py --action cleanup --days 30

The export file name is the user's choice; its content is a verified
ticker-registry bundle, never a pickle. Store options (--models-dir,
--tracking-uri, --config) default as in the `ticker-registry` CLI.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--action", required=True,
                        choices=["status", "export", "import", "preload", "cleanup"])
    parser.add_argument("--ticker", help="ticker for --action export")
    parser.add_argument("--tickers", nargs="+", help="tickers for --action preload")
    parser.add_argument("--file", help="bundle file for export / import")
    parser.add_argument("--promote", action="store_true",
                        help="import: serve at once if the ticker has no production version")
    parser.add_argument("--days", type=int, default=30, help="cleanup: versions older than this")
    parser.add_argument("--keep-last", type=int, default=2, help="cleanup: newest versions kept")
    parser.add_argument("--models-dir", default=None, help="embedded store folder (./mlruns)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow URI (else MLFLOW_TRACKING_URI)")
    parser.add_argument("--config", default=None, help="YAML config file")
    args = parser.parse_args(argv)

    from ticker_registry import TickerRegistryError
    from ticker_registry.manager import SyncTickerModelManager

    try:
        with SyncTickerModelManager(args.config, args.models_dir, args.tracking_uri,
                                    auto_retrain=False) as manager:
            return _run(manager, args, parser)
    except TickerRegistryError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an unwritable --file, a full disk: one line, as the CLI says it
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"Error: cannot use{where}: {exc.strerror or exc}; check the path and its "
              "permissions", file=sys.stderr)
        return 1


def _run(manager, args, parser) -> int:
    if args.action == "status":
        print(json.dumps(manager.metadata(), indent=2))
    elif args.action == "export":
        if not args.ticker or not args.file:
            parser.error("--action export needs --ticker and --file")
        manager.export(args.ticker, args.file)
        print(f"exported {args.ticker} to {args.file}")
    elif args.action == "import":
        if not args.file:
            parser.error("--action import needs --file")
        result = manager.import_bundle(args.file, promote=args.promote)
        state = "imported as" if result.created else "already present as"
        print(f"{state} {result.version.ticker} version {result.version.version}")
    elif args.action == "preload":
        if not args.tickers:
            parser.error("--action preload needs --tickers T [T ...]")
        results = manager.preload(args.tickers)
        for r in results:
            mark = "ok" if r.ok else f"FAILED: {r.error}"
            print(f"{r.ticker}: v{r.version} {r.seconds:.2f}s {r.size_bytes} bytes {mark}")
        return 0 if all(r.ok for r in results) else 1
    elif args.action == "cleanup":
        report = manager.cleanup(days=args.days, keep_last=args.keep_last)
        print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
