"""Costs: ``ledger`` (cost log entries, the daily run), ``budget`` (budget, kill switch, alerts),
``quotas`` (per-user monthly quotas), ``selectors`` (cost reads), and the pure ``pricing`` and
``charts`` (no Django imports)."""
