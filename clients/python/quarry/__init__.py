"""Quarry's Python client: ``Quarry(url, api_key=None)``, ``QuarryError``, ``verify_webhook``."""

from .client import Quarry, item_error
from .errors import QuarryError
from .webhooks import sign, verify_webhook

__all__ = ["Quarry", "QuarryError", "item_error", "sign", "verify_webhook"]
