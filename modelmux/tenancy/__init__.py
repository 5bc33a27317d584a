"""Tenancy: who is calling. Keys, teams, users and roles, and the stores that keep them."""
