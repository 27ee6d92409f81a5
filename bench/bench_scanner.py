"""Scanner benchmark: detection and false-positive rates on the malicious corpus, the benign corpus and real code,
and scan throughput (files/s).

    .venv/bin/python bench/bench_scanner.py [--repeat N] [--no-bandit] [--packs DIR] [--no-check]

Sets, each printed as a table (worst severity and number of high-or-above findings per item):

- malicious: tests/security/corpus/malicious (each sample must be flagged high or above);
- benign corpus: tests/security/corpus/benign (small packs; the calibration excerpts among them reproduce patterns
  that real code was wrongly flagged for);
- benign real code: popular libraries scanned where this environment installed them (tests/security/corpus/
  real_code.toml, plus a few larger ones when present) and partyflow's own scanner;
- fetched packs (optional): every folder under `--packs DIR` (or $PARTYFLOW_BENCH_PACKS), e.g. real ComfyUI packs
  checked out from their repositories and unpacked wheels such as comfyui-manager. Nothing is downloaded here: the
  table says which were present. Packs listed in `KNOWN_RISKY` are real code that does what a high finding means
  (import-time package installs, writes to shell profiles) and are reported apart, with the reason. Each fetched
  pack's count of high findings is compared with tests/security/corpus/real_packs.toml (which also names the
  commit or version measured).

The goal: 100% of the malicious set at high or above, and 0 high findings on the benign sets.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from rich.console import Console
from rich.table import Table

from partyflow.config import Home
from partyflow.security.scanner import ScanOptions, ScanReport, Severity, import_osv, scan

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "security" / "corpus"
EXTRA_LIBRARIES = ("pydantic", "langgraph", "websockets", "openai", "hypothesis")
REAL_PACKS = tomllib.loads((CORPUS / "real_packs.toml").read_text())
PACKS = {entry["name"]: entry for entry in REAL_PACKS["pack"]}
# real code whose high findings are true: what they describe is what the code does
KNOWN_RISKY = {entry["import"]: entry["reason"] for entry in REAL_PACKS["library"]} | \
    {entry["name"]: entry["reason"] for entry in REAL_PACKS["pack"] if not entry["benign"]}


def _installed(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return None
    if spec.origin and spec.origin != "namespace":
        return Path(spec.origin).parent
    locations = list(spec.submodule_search_locations or [])   # a namespace package (langgraph)
    return Path(locations[0]) if locations else None


def _row(table: Table, name: str, kind: str, report: ScanReport) -> int:
    high = len(report.at_or_above(Severity.HIGH))
    worst = report.max_severity.label if report.max_severity else "-"
    table.add_row(name, kind, str(report.files_scanned), worst, str(high), f"{report.seconds * 1000:.0f}")
    return high


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="scans per corpus sample for the throughput figure")
    parser.add_argument("--no-bandit", action="store_true", help="measure our rules only")
    parser.add_argument("--packs", default=os.environ.get("PARTYFLOW_BENCH_PACKS", ""),
                        help="a folder of fetched real packs (one subfolder each)")
    parser.add_argument("--no-check", action="store_true", help="only print; exit 0 whatever the rates")
    args = parser.parse_args(argv)
    options = ScanOptions(use_bandit=not args.no_bandit)
    expected = tomllib.loads((CORPUS / "expected.toml").read_text())["malicious"]
    malicious = [CORPUS / "malicious" / name for name in sorted(expected)]
    benign = sorted(p for p in (CORPUS / "benign").iterdir() if p.is_dir())
    real: list[tuple[str, Path]] = []
    missing: list[str] = []
    for module in [e["import"] for e in tomllib.loads((CORPUS / "real_code.toml").read_text())["package"]] \
                    + list(EXTRA_LIBRARIES) + [entry["import"] for entry in REAL_PACKS["library"]]:
        path = _installed(module)
        (real.append((module, path)) if path is not None else missing.append(module))
    real.append(("partyflow.security.scanner", REPO / "src" / "partyflow" / "security" / "scanner"))
    fetched = sorted(p.resolve() for p in Path(args.packs).iterdir() if p.is_dir()) \
        if args.packs and Path(args.packs).is_dir() else []
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        home.root.mkdir()
        import_osv(CORPUS / "osv", home)
        table = Table("item", "set", "files", "worst", "high+", "ms", title="scanner: per item")
        detected = sum(_row(table, p.name, "malicious", scan(p, home=home, options=options)) > 0 for p in malicious)
        benign_flagged = sum(_row(table, p.name, "benign corpus", scan(p, home=home, options=options)) > 0
                             for p in benign)
        real_items = real_flagged = real_high = 0
        risky: list[tuple[str, int]] = []
        unexpected: list[str] = []
        for name, path in real + [(p.name.removesuffix("-py3-none-any").removesuffix("-py2.py3-none-any"), p)
                                  for p in fetched]:
            kind = "fetched pack" if (name, path) not in real else "installed library"
            report = scan(path, options=ScanOptions(use_bandit=not args.no_bandit, use_vulndb=False))
            recorded = PACKS.get(name)
            if recorded is not None and len(report.at_or_above(Severity.HIGH)) != recorded["high"]:
                unexpected.append(f"{name}: {len(report.at_or_above(Severity.HIGH))} high, recorded {recorded['high']}")
            if name in KNOWN_RISKY:
                risky.append((name, _row(table, name, f"{kind}, known risky", report)))
                continue
            high = _row(table, name, f"{kind}, benign", report)
            real_items += 1
            real_flagged += high > 0
            real_high += high
        throughput = {}
        for label, bandit in (("with bandit", True), ("our rules only", False)):
            if bandit and args.no_bandit:
                continue
            files, started = 0, time.perf_counter()
            for _ in range(args.repeat):
                for path in malicious + benign:
                    files += scan(path, home=home, options=ScanOptions(use_bandit=bandit)).files_scanned
            throughput[f"corpus, {label}"] = files / (time.perf_counter() - started)
        tree = REPO / "src" / "partyflow"
        report = scan(tree, options=ScanOptions(use_bandit=not args.no_bandit, use_vulndb=False))
        throughput[f"partyflow's own source ({report.files_scanned} files)"] = report.files_scanned / report.seconds
    console.print(table)
    summary = Table("measure", "value", title="scanner: rates")
    summary.add_row("detection, malicious corpus (high or above)",
                    f"{detected}/{len(malicious)} = {detected / len(malicious):.1%}")
    summary.add_row("false positives, benign corpus (items with a high)",
                    f"{benign_flagged}/{len(benign)} = {benign_flagged / len(benign):.1%}")
    summary.add_row("false positives, benign real code (items with a high)",
                    f"{real_flagged}/{real_items} = {real_flagged / max(real_items, 1):.1%} "
                    f"({real_high} high findings)")
    summary.add_row("fetched packs", ", ".join(p.name for p in fetched) if fetched else
                    "none (pass --packs DIR to include real packs checked out locally)")
    for name, high in risky:
        summary.add_row(f"known risky: {name}", f"{high} high findings - {KNOWN_RISKY[name]}")
    if missing:
        summary.add_row("libraries not installed here", ", ".join(missing))
    if unexpected:
        summary.add_row("differs from real_packs.toml", "; ".join(unexpected))
    for label, rate in throughput.items():
        summary.add_row(f"throughput, {label}", f"{rate:,.0f} files/s")
    console.print(summary)
    ok = detected == len(malicious) and benign_flagged == 0 and real_flagged == 0 and not unexpected
    console.print("PASS" if ok else "MISS")
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
