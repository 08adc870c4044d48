"""A backing service that is down answers 503 with Retry-After (JSON under /api/, a plain page
elsewhere), not a traceback's 500: the database, or the task broker (Redis) after a change was saved
(its background work is queued by the periodic resume, triggers/tasks.py, once Redis is back).
The webhook ingress has its own answer (triggers/edge/ingress.py)."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from kombu.exceptions import OperationalError as BrokerUnavailable

log = logging.getLogger(__name__)
RETRY_AFTER = "5"
DETAIL = {
    "database": "The database is unavailable; try again shortly.",
    "task broker": "The task broker (Redis) is unavailable: the change was saved; its background work is queued "
                   "once the broker is back.",
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable · relayweb</title></head>
<body><h1>Temporarily unavailable</h1><p>{detail}</p></body></html>
"""


class ServiceUnavailableMiddleware(MiddlewareMixin):
    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError | InterfaceError):
            service = "database"
        elif isinstance(exception, BrokerUnavailable):
            service = "task broker"
        else:
            return None
        log.warning("%s %s answered 503, the %s is unavailable: %s", request.method, request.path, service, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": DETAIL[service]}, status=503)
        else:
            response = HttpResponse(PAGE.format(detail=DETAIL[service]), status=503,
                                    content_type="text/html; charset=utf-8")
        response["Retry-After"] = RETRY_AFTER
        return response
