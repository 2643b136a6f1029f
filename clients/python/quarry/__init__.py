"""Quarry's Python client: ``Quarry(url, api_key=None)``, ``QuarryError``, ``verify_webhook``."""

from .client import Quarry
from .errors import QuarryError
from .webhooks import sign, verify_webhook

__all__ = ["Quarry", "QuarryError", "sign", "verify_webhook"]
