"""The web page and JSON API for clinicians: `create_app` builds it, `serve` runs it."""

from __future__ import annotations

from rag.web.app import create_app, serve

__all__ = ["create_app", "serve"]
