"""The static files (the page's script and stylesheet), whose errors are pages like any other."""
from __future__ import annotations

import tornado.web

from .base import BaseHandler


class StaticFiles(tornado.web.StaticFileHandler, BaseHandler):
    """Tornado's static file handler; a missing file gets the shopper's 404 page, under
    its CSP, instead of Tornado's bare one."""

    api = False
