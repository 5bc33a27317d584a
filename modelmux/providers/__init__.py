"""Providers: one small module per upstream type, all behind the ``Provider`` interface."""
