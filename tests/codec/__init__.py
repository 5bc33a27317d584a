"""Tests for modelmux.codec."""
