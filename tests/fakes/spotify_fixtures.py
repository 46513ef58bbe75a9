"""Fixtures for the fake Spotify/ReccoBeats/accounts server (owned by the sources work)."""
