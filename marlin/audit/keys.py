"""The audit chain's HMAC keys: the current one signs new events and checkpoints, old ones only
verify. They come from the environment or a secrets file (settings.AUDIT_KEY, AUDIT_OLD_KEYS),
never from the database, so someone who can only write the database cannot forge a signature.

Unset, a key is generated once into the data directory, like the demo's secret key. A key is
named by its id, the first 8 hex digits of its SHA-256, which each event stores; rotating means
setting a new MARLIN_AUDIT_KEY and moving the old one to MARLIN_AUDIT_OLD_KEYS.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from marlin.paths import data_dir

MIN_KEY_LENGTH = 32
HOW_TO_MAKE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


@dataclass(frozen=True)
class AuditKey:
    id: str
    secret: bytes = b""

    def sign(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never the secret, not even in a traceback
        return f"AuditKey(id={self.id!r})"


def _key(text: str, source: str) -> AuditKey:
    if len(text) < MIN_KEY_LENGTH:
        raise ImproperlyConfigured(
            f"The audit key from {source} is {len(text)} characters long; it needs at least "
            f"{MIN_KEY_LENGTH}. Make one with: {HOW_TO_MAKE_ONE}"
        )
    secret = text.encode()
    return AuditKey(id=hashlib.sha256(secret).hexdigest()[:8], secret=secret)


@lru_cache(maxsize=8)
def _generated(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a file of our own, then linked into place: a process starting at the
        # same moment sees either no key or the whole key, and both end up with the same one.
        fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            os.unlink(draft)
    return path.read_text().strip()


def current_key() -> AuditKey:
    """The key that signs from now on."""
    if settings.AUDIT_KEY:
        return _key(settings.AUDIT_KEY, "MARLIN_AUDIT_KEY")
    path = data_dir() / "audit_key"
    return _key(_generated(path), str(path))


def keyring() -> dict[str, AuditKey]:
    """Every key that may have signed an event, by id: the current one and the old ones."""
    ring = {
        key.id: key
        for key in (_key(text, "MARLIN_AUDIT_OLD_KEYS") for text in settings.AUDIT_OLD_KEYS)
    }
    current = current_key()
    ring[current.id] = current
    return ring


def available_keys() -> dict[str, AuditKey]:
    """The keys this machine has now, by id, without generating one: what `marlin restore` checks
    a backup's events against before it writes anything (a generated key would sign nothing old)."""
    texts = [(text, "MARLIN_AUDIT_OLD_KEYS") for text in settings.AUDIT_OLD_KEYS]
    generated = data_dir() / "audit_key"
    if settings.AUDIT_KEY:
        texts.append((settings.AUDIT_KEY, "MARLIN_AUDIT_KEY"))
    elif generated.is_file():
        texts.append((generated.read_text().strip(), str(generated)))
    return {key.id: key for key in (_key(text, source) for text, source in texts)}


def check_configured_keys(**kwargs: object) -> list[checks.CheckMessage]:
    """System check: a configured key that is too short stops the server at start, not at the
    first audited write. (An unset key is fine: it is generated on first use.)"""
    configured = [("MARLIN_AUDIT_KEY", settings.AUDIT_KEY)] if settings.AUDIT_KEY else []
    configured += [("MARLIN_AUDIT_OLD_KEYS", text) for text in settings.AUDIT_OLD_KEYS]
    errors: list[checks.CheckMessage] = []
    for source, text in configured:
        try:
            _key(text, source)
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="marlin.audit.E001"))
    return errors
