"""The rules the scanner knows: id, short name and what they look for (SARIF's rule list, `--format table` legend).

Ids are stable so suppressions, audits and reports can refer to them across versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["RULES", "Rule"]


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    description: str


_ALL = (
    Rule("PF100", "scan-coverage", "A file could not be analysed (too large, unparseable): what was not read was "
                                   "not checked."),
    Rule("PF101", "dynamic-exec", "exec/eval/compile of computed, decoded or downloaded data."),
    Rule("PF102", "obfuscation", "Encoded blobs, text spelled with chr() of literal numbers, marshal of blobs or "
                                 "packer runtimes that hide code."),
    Rule("PF103", "process-spawn", "Starting processes: package managers and shells when the pack is imported, "
                                   "hidden background processes, inline code."),
    Rule("PF104", "import-time-network", "Network use when the pack is imported (module level, class bodies, "
                                         "decorators and what they call, across the pack's files)."),
    Rule("PF105", "executable-download", "Downloading executables or scripts and making them runnable."),
    Rule("PF106", "credential-theft", "Reading credentials (environment beyond one configured key, browser stores, "
                                      "SSH keys, wallets) and using the network."),
    Rule("PF107", "write-outside", "Writes outside the pack and the partyflow home; symlinks that escape the pack."),
    Rule("PF108", "persistence", "Startup files, cron, shell profiles, services, .pth files in site-packages."),
    Rule("PF109", "unsafe-deserialization", "pickle/torch.load of untrusted data; pickles that import dangerous "
                                            "callables."),
    Rule("PF110", "crypto-miner", "Mining pools, stratum URLs and miner programs."),
    Rule("PF111", "pth-file", "Packs and wheels that ship .pth files, which run at every Python start."),
    Rule("PF112", "native-binary", "Executables or native libraries shipped in the pack (cannot be reviewed)."),
    Rule("PF201", "typosquat", "A dependency whose name is one typo away from a popular package."),
    Rule("PF202", "blocklisted-dependency", "A dependency version known to be malicious."),
    Rule("PF203", "direct-url-dependency", "A dependency fetched from a URL instead of the package index."),
    Rule("PF204", "custom-index", "Requirements that add or replace the package index."),
    Rule("PF205", "known-vulnerability", "A pinned dependency version with a known vulnerability (offline OSV)."),
)

RULES: MappingProxyType[str, Rule] = MappingProxyType({rule.id: rule for rule in _ALL})
