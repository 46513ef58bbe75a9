"""Fixtures for the fake Discord gateway + REST (owned by the Discord work)."""
