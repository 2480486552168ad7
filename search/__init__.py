"""Landmark Lens: reverse image search over landmark photos with three CNN encoders."""
