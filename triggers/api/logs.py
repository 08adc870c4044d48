"""API: a trigger's handler logs, /api/v1/tenants/<slug>/triggers/<name>/logs/; members read (viewers included).

Pages of lines by cursor (triggers/logs/queries.py): oldest first within a page, the newest page by default;
`next` is the page of older lines, `previous` the page of newer ones."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from tenants.api import TenantRole, TenantScoped, tenant_param
from triggers.logs import queries
from triggers.models import LogLine, Trigger

from .views import trigger_param

MAX_LINE_ID = 2**63 - 1


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = LogLine
        fields = ["id", "time", "pod", "revision", "container", "stream", "text", "cut"]
        read_only_fields = fields
        extra_kwargs = {"time": {"help_text": "The kubelet's timestamp of the line."},
                        "stream": {"help_text": "stdout or stderr when the runtime splits them, else empty."},
                        "cut": {"help_text": f"Characters cut from the end of a line longer than "
                                             f"{LogLine.MAX_CHARS}."}}


class LogPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The page of older lines (before= the oldest line "
                                "here); null when there is none.")
    previous = serializers.URLField(allow_null=True, help_text="The page of newer lines (after= the newest line "
                                    "here); null when none existed when this page was read.")
    delivery_match = serializers.ChoiceField(
        choices=[queries.NAMED, queries.WINDOW], allow_null=True,
        help_text="With `delivery`: named (the lines that name the delivery's id) or window (none does: the "
                  "lines printed while it was forwarded); null without `delivery`.")
    results = LogLineSerializer(many=True, help_text="Oldest first.")


class LogCursorSerializer(serializers.Serializer):
    before = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LINE_ID)
    after = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LINE_ID)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=queries.MAX_PAGE_SIZE,
                                         default=queries.PAGE_SIZE)

    def validate(self, data):
        if "before" in data and "after" in data:
            raise ValidationError({"after": ["Give before or after, not both."]})
        return data


def _param(name: str, description: str, type_=str, **extra) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, description=description, **extra)


filter_params = [
    _param(name, str(f.label), OpenApiTypes.DATETIME if name in ("since", "until") else
           OpenApiTypes.UUID if name == "delivery" else str)
    for name, f in queries.LogFilter.base_filters.items()
]
cursor_params = [
    _param("before", "A line's id: the page of lines older than it (see `next`).", int),
    _param("after", "A line's id: the page of lines newer than it (see `previous`); to follow a log, the id of "
                    "the newest line you have.", int),
    _param("page_size", f"Lines per page (at most {queries.MAX_PAGE_SIZE}).", int, default=queries.PAGE_SIZE),
]


@extend_schema(parameters=[tenant_param, trigger_param])
class TriggerLogsView(TenantScoped, generics.GenericAPIView):
    """The lines the trigger's handler printed, kept after its pods. Within a page the lines are oldest first;
    without a cursor, the page holds the newest lines of the range. `next` pages to older lines, `previous`
    to newer ones. A `delivery` that is not one of this trigger's is a 400 naming the field."""

    serializer_class = LogLineSerializer
    permission_classes = [permissions.IsAuthenticated, TenantRole]
    filter_backends = []
    pagination_class = None

    @extend_schema(parameters=[*filter_params, *cursor_params], responses=LogPageSerializer)
    def get(self, request, *args, **kwargs):
        trigger = get_object_or_404(Trigger, tenant=self.tenant, name=self.kwargs.get("trigger_name"))
        filters = queries.LogFilter(request.query_params, trigger=trigger)
        cursor = LogCursorSerializer(data=request.query_params)
        valid = cursor.is_valid()
        if not filters.is_valid() or not valid:
            raise ValidationError({**filters.errors, **cursor.errors})
        before = self.position(trigger, cursor.validated_data, "before")
        after = self.position(trigger, cursor.validated_data, "after")
        page = queries.page_of_lines(filters.qs, before=before, after=after, size=cursor.validated_data["page_size"])
        return Response({
            "next": self.link(request, "before", page.older),
            "previous": self.link(request, "after", page.newer),
            "delivery_match": filters.delivery_match,
            "results": LogLineSerializer(page.lines, many=True).data,
        })

    @staticmethod
    def position(trigger: Trigger, data: dict, name: str) -> queries.Position | None:
        if name not in data:
            return None
        found = queries.line_position(trigger, data[name])
        if found is None:
            raise ValidationError({name: [f"No line {data[name]} in this trigger's logs (pruned?): start again "
                                          "from the newest page."]})
        return found

    @staticmethod
    def link(request, name: str, cursor: int | None) -> str | None:
        if cursor is None:
            return None
        other = "after" if name == "before" else "before"
        return replace_query_param(remove_query_param(request.build_absolute_uri(), other), name, cursor)
