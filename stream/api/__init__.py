"""The HTTP API: classify, tag and route texts and messages with the stream's models and rules."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.api.app import create_app
    from stream.api.server import BackgroundServer, serve
    from stream.api.settings import ApiSettings

# Resolved on first use: `textroute --help` imports stream.api.cli, which imports this package
# first, and must not pay for FastAPI and the models' modules.
_EXPORTS = {
    "ApiSettings": "stream.api.settings",
    "BackgroundServer": "stream.api.server",
    "create_app": "stream.api.app",
    "serve": "stream.api.server",
}

__all__ = ["ApiSettings", "BackgroundServer", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stream.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
