"""The error an expert raises when this build cannot run it."""


class ExpertUnavailable(RuntimeError):
    """An expert whose weights or runtime are missing; the message says how to get them."""
