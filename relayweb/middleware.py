"""A database outage answers 503 with Retry-After (JSON under /api/, a plain page elsewhere), not a
traceback's 500. The webhook ingress has its own answer (triggers/ingress.py)."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

log = logging.getLogger(__name__)
RETRY_AFTER = "5"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable · relayweb</title></head>
<body><h1>Temporarily unavailable</h1><p>relayweb cannot reach its database right now. Try again in a
few seconds.</p></body></html>
"""


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("%s %s answered 503, the database is unavailable: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": "The database is unavailable; try again shortly."}, status=503)
        else:
            response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = RETRY_AFTER
        return response
