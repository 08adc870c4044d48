from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from relayweb import health
from tenants import api as tenants_api
from tenants.signin import throttled_signin
from triggers.api import candidates as candidate_api
from triggers.api import deliveries as delivery_api
from triggers.api import logs as logs_api
from triggers.api import stats as stats_api
from triggers.api import views as triggers_api

router = DefaultRouter(trailing_slash=True)
router.register("tenants", tenants_api.TenantViewSet, basename="tenant")
router.register(
    r"tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/members", tenants_api.MembershipViewSet, basename="membership"
)
router.register(
    r"tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/invitations", tenants_api.InvitationViewSet, basename="invitation"
)
router.register("invitations", tenants_api.MyInvitationViewSet, basename="my-invitation")
router.register("tokens", tenants_api.ApiTokenViewSet, basename="apitoken")
router.register(r"tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/audit", tenants_api.AuditViewSet, basename="audit")
router.register(r"tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/triggers", triggers_api.TriggerViewSet, basename="trigger")
router.register(
    rf"tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/triggers/(?P<trigger_name>{triggers_api.NAME_REGEX})/deployments",
    triggers_api.DeploymentViewSet,
    basename="deployment",
)
router.register(
    rf"tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/triggers/(?P<trigger_name>{triggers_api.NAME_REGEX})/deliveries",
    delivery_api.DeliveryViewSet,
    basename="delivery",
)
router.register(
    rf"tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/triggers/(?P<trigger_name>{triggers_api.NAME_REGEX})/candidate-replays",
    candidate_api.CandidateReplayViewSet,
    basename="candidate-replay",
)
router.register(
    rf"tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/triggers/(?P<trigger_name>{triggers_api.NAME_REGEX})/scale-events",
    stats_api.ScaleEventViewSet,
    basename="scale-event",
)
# objects, not lists: plain views beside the router
stats_urls = [
    re_path(rf"^tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/triggers/(?P<trigger_name>{triggers_api.NAME_REGEX})/stats/$",
            stats_api.TriggerStatsView.as_view(), name="trigger-stats"),
    re_path(rf"^tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/triggers/(?P<trigger_name>{triggers_api.NAME_REGEX})/logs/$",
            logs_api.TriggerLogsView.as_view(), name="trigger-logs"),
    re_path(r"^tenants/(?P<tenant_slug>[-a-zA-Z0-9_]+)/stats/$", stats_api.TenantStatsView.as_view(),
            name="tenant-stats"),
]

urlpatterns = [
    path("admin/login/", throttled_signin(admin.site.login), name="admin-login"),
    path("admin/", admin.site.urls),
    path("ops/", include("triggers.pages.ops_urls")),
    path("api/v1/", include(stats_urls)),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("triggers.pages.urls")),
    path("", include("tenants.urls")),
]

handler404 = "relayweb.views.not_found"
handler500 = "relayweb.views.server_error"
