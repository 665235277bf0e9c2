"""Budgets: scopes, limits, thresholds and actions, enforced through the ledger."""
