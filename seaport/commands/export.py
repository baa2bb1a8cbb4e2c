"""`seaport export`: hand a partner the de-identified aggregates, and nothing else (R4, R10).

Copies the Parquet files of the aggregate tables (`parquet/<table>/date=D/data_0.parquet`)
into `--to DIR`, with a `MANIFEST.json` (partner, time, files with rows and SHA-256). The partner
must be declared with its region in the residency file (`seaport/residency.py`). The copy is
made in a scratch folder beside DIR, `seaport audit` scans it, and only a clean copy is renamed
into place: with any finding nothing is exported and the command exits 1.

    seaport export --partner example-partner --to exports/example-partner --warehouse warehouse/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from seaport.errors import SeaportError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n\n", 1)[1]
    parser.add_argument("--partner", required=True, help="a partner declared in the residency file")
    parser.add_argument("--to", type=Path, required=True, metavar="DIR", help="a new or empty folder")
    parser.add_argument("--warehouse", type=Path, default=Path("warehouse"), help="warehouse (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from seaport.residency import partner_region
    from sinks.audit import audit_warehouse
    from transforms.cells import ANALYTICS_TABLES

    region = partner_region(args.partner)
    source = args.warehouse / "parquet"
    if not source.is_dir():
        raise SeaportError(f"no aggregates in {args.warehouse} (no parquet/); run `seaport ingest` first")
    target: Path = args.to
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SeaportError(f"{target} exists and is not an empty folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        files = []
        for table in ANALYTICS_TABLES:
            for path in sorted((source / table).rglob("*.parquet")):
                relative = path.relative_to(source)
                (scratch / relative.parent).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, scratch / relative)
                files.append(relative)
        report = audit_warehouse(scratch)
        if report.findings:
            kinds = sorted({f.kind for f in report.findings.values()})
            print(
                f"seaport export: refused: the audit found {len(report.findings)} finding(s) "
                f"({', '.join(kinds)}) in what would be copied; nothing was exported",
                file=sys.stderr,
            )
            args.trail = {"outcome": f"refused by the audit ({len(report.findings)} findings)"}
            return 1
        manifest = {
            "partner": args.partner,
            "region": region,
            "exported_at": datetime.now(UTC).isoformat(),
            "files": [
                {"path": str(f), "sha256": hashlib.sha256((scratch / f).read_bytes()).hexdigest()} for f in files
            ],
        }
        (scratch / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for folder, _, names in os.walk(scratch):  # the partner's copy, readable by whoever receives it
            os.chmod(folder, 0o755)
            for name in names:
                os.chmod(os.path.join(folder, name), 0o644)
        if target.exists():
            target.rmdir()
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"exported {len(files)} files of aggregates to {target} for {args.partner} ({region}); audit clean")
    args.trail = {"outcome": f"exported {len(files)} files to {args.partner}"}
    return 0
