"""Landmark Lens: reverse image search over landmark photos, built to compare encoders (the encoders file's)."""
