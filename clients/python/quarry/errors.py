"""The one exception the client raises: Quarry's error code, HTTP status and message."""

from __future__ import annotations

from typing import Optional


class QuarryError(Exception):
    """An error answer from Quarry (or a transport failure, with status 0).

    ``code`` is the stable ``QUARRY_ERR_*`` code to branch on; ``status`` the HTTP status;
    ``field`` names the request field at fault when the API says which.
    """

    code: str
    status: int
    field: Optional[str]

    def __init__(self, code: str, message: str, status: int, field: Optional[str] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.field = field

    def __repr__(self) -> str:
        return f"QuarryError(code={self.code!r}, status={self.status}, message={self.message!r})"
