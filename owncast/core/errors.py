"""Errors the domain raises and the HTTP layer turns into JSON answers."""

from __future__ import annotations


class ApiError(Exception):
    """A request that cannot be served; ``status`` and ``message`` go to the client."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class ValidationError(ApiError):
    """A value that breaks a setting's rules: always a 400."""

    status = 400


class NotFoundError(ApiError):
    status = 404
