"""What an engine keeps for model calls between node calls: the routers' health book and the usage ledger.

Node calls are short-lived (a provider is built per call), so what must outlive them lives here, held by the
engine's host context: what routers learned about their members, and one open connection to the ledger.
`meter_for` builds the `Meter` of one call from the home's current config.toml (budgets and prices apply
without a restart, like provider changes).
"""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path

from partyflow.llm.errors import ProviderConfigError
from partyflow.llm.routing.health import HealthBook
from partyflow.llm.usage.budgets import parse_budgets
from partyflow.llm.usage.ledger import CallLabels, UsageLedger
from partyflow.llm.usage.meter import Meter
from partyflow.llm.usage.prices import PriceTable


class ModelServices:
    """The health book and the ledger of one home's state.sqlite (opened on first use, closed with the engine)."""

    def __init__(self, root: Path, state_db: Path) -> None:
        self.root = root
        self.state_db = state_db
        self.health = HealthBook()
        self._ledger: UsageLedger | None = None
        self._lock = threading.Lock()

    def ledger(self) -> UsageLedger:
        with self._lock:
            if self._ledger is None:
                self._ledger = UsageLedger(self.state_db)
            return self._ledger

    def prompt_usage(self, prompt_id: str) -> dict[str, object] | None:
        """A prompt's model calls in total (for history and metrics); None when it made none."""
        totals = self.ledger().prompt_usage(prompt_id)
        return totals if totals["calls"] else None

    def meter_for(self, config_file: Path, labels: CallLabels = CallLabels()) -> Meter:
        raw = read_config(config_file)
        return Meter(self.ledger(), budgets=parse_budgets(raw, str(config_file)),
                     prices=PriceTable.from_config(raw, self.root, str(config_file)), labels=labels)

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None


def read_config(config_file: Path) -> dict[str, object]:
    if not config_file.exists():
        return {}
    try:
        return tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProviderConfigError(f"{config_file} is not valid TOML ({exc})", hint="Fix or remove the file") from None
