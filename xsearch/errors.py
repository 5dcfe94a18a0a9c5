"""User-facing errors: each one is printed by the CLI as one clear line with a non-zero exit."""


class XsearchError(Exception):
    """An error caused by user input or environment, not a bug. Its message is one sentence."""

    exit_code = 1


class UsageError(XsearchError):
    """Bad arguments: empty query, k <= 0, mismatched weights, unknown modality."""

    exit_code = 2


class MediaError(XsearchError):
    """A file could not be decoded (corrupt, truncated, unsupported, too large, unreadable)."""


class ModelError(XsearchError):
    """A model spec or checkpoint could not be resolved or loaded."""


class CollectionError(XsearchError):
    """A collection is missing, locked, corrupt, or was built with another model."""


class CollectionLockedError(CollectionError):
    """Another writer holds the collection's lock."""

    exit_code = 3
