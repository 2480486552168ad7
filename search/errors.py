"""User-facing errors: each carries a message that says what went wrong and what to do."""


class LandmarkError(Exception):
    """Base class for errors shown to a user as one clear line."""


class BadImageError(LandmarkError):
    """An input could not be used as a photo."""


class BadIndexError(LandmarkError):
    """An index on disk is missing, corrupt or does not match the encoder."""


class WeightsUnavailableError(LandmarkError):
    """Model weights could not be found or downloaded."""


class DatasetError(LandmarkError):
    """A dataset folder or archive is missing or not in the expected layout."""


class NoHeatmapError(LandmarkError):
    """An encoder whose model exposes no spatial map to explain a similarity on."""
