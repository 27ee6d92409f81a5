"""Scanner benchmark: detection and false-positive rates on the test corpus, and scan throughput (files/s).

    .venv/bin/python bench/bench_scanner.py [--repeat N] [--no-bandit]

Prints one table row per corpus sample (worst severity, time) and a summary with the two rates and throughput with
and without bandit, so a change to a rule shows up as a changed rate or a slower scan.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from rich.console import Console
from rich.table import Table

from partyflow.config import Home
from partyflow.security.scanner import ScanOptions, Severity, import_osv, scan

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "security" / "corpus"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="scans per sample for the throughput figure")
    parser.add_argument("--no-bandit", action="store_true", help="measure our rules only")
    args = parser.parse_args(argv)
    expected = tomllib.loads((CORPUS / "expected.toml").read_text())["malicious"]
    samples = [("malicious", CORPUS / "malicious" / name) for name in sorted(expected)]
    samples += [("benign", p) for p in sorted((CORPUS / "benign").iterdir()) if p.is_dir()]
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        home.root.mkdir()
        import_osv(CORPUS / "osv", home)
        table = Table("sample", "kind", "worst", "flagged", "ms")
        detected = false_positives = 0
        for kind, path in samples:
            report = scan(path, home=home, options=ScanOptions(use_bandit=not args.no_bandit))
            flagged = bool(report.at_or_above(Severity.HIGH))
            detected += kind == "malicious" and flagged
            false_positives += kind == "benign" and flagged
            worst = report.max_severity.label if report.max_severity else "-"
            table.add_row(path.name, kind, worst, "yes" if flagged else "no", f"{report.seconds * 1000:.1f}")
        throughput = {}
        for label, bandit in (("with bandit", True), ("our rules only", False)):
            if bandit and args.no_bandit:
                continue
            files = 0
            started = time.perf_counter()
            for _ in range(args.repeat):
                for _, path in samples:
                    files += scan(path, home=home, options=ScanOptions(use_bandit=bandit)).files_scanned
            throughput[label] = files / (time.perf_counter() - started)
        tree = Path(__file__).resolve().parents[1] / "src" / "partyflow"  # real code, not tiny samples
        report = scan(tree, options=ScanOptions(use_bandit=not args.no_bandit, use_vulndb=False))
        throughput[f"partyflow's own source ({report.files_scanned} files)"] = report.files_scanned / report.seconds
    console = Console()
    console.print(table)
    malicious = sum(1 for kind, _ in samples if kind == "malicious")
    benign = len(samples) - malicious
    summary = Table("measure", "value")
    summary.add_row("detection rate (high or critical)", f"{detected}/{malicious} = {detected / malicious:.1%}")
    summary.add_row("false-positive rate (benign at high+)", f"{false_positives}/{benign} = "
                    f"{false_positives / benign:.1%}")
    for label, rate in throughput.items():
        summary.add_row(f"throughput, {label}", f"{rate:,.0f} files/s")
    console.print(summary)
    return 0 if detected == malicious and false_positives == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
