"""Spend: prices, the cost of each request, the spend log, budgets, alerts and usage reports."""
