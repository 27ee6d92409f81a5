"""The usage ledger, prices and budgets of model calls (issue 18)."""
