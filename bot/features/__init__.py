"""Audio features: cache, ReccoBeats client, and the gathering order (CSV → cache → Spotify →
ReccoBeats). The feature matrix for clustering lives in :mod:`bot.features.matrix`."""
