"""Secrets at rest (run credentials): Fernet with a key derived from the server key.

Sealed values are only ever opened by the worker that hands them to the agent;
no API returns them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


def _fernet(secret_key: bytes) -> Fernet:
    digest = hashlib.sha256(b"runplane-credentials:" + secret_key).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret_key: bytes, value: Any) -> str:
    return _fernet(secret_key).encrypt(json.dumps(value).encode()).decode()


def unseal(secret_key: bytes, token: str) -> Any:
    """The sealed value; ``None`` when it cannot be opened (the key changed)."""
    try:
        return json.loads(_fernet(secret_key).decrypt(token.encode()))
    except (InvalidToken, ValueError):
        return None
