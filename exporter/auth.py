"""The authenticate step: does a webhook request come from SMTPeter?"""

from __future__ import annotations

from exporter.metrics import Metrics
from exporter.pipeline import Authenticator, Unauthenticated
from exporter.settings import AuthMode, Settings


def build_authenticator(settings: Settings, metrics: Metrics) -> Authenticator:
    """The authenticator of ``--auth.mode``."""
    mode = settings.effective_auth_mode
    if mode is AuthMode.NONE:
        return Unauthenticated()
    raise NotImplementedError(f"--auth.mode={mode} is not built yet")
