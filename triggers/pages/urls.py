"""Trigger pages under a tenant. Names carry a `ui-` prefix: the API router's `trigger-*` names
(trigger-list, trigger-deploy, …) would otherwise collide with them in reverse().

The create page lives at `triggers/-/new/`: "-" cannot start a trigger name, so no trigger
(not even one called "new") can shadow it.
"""

from django.urls import path

from . import candidates as candidate_views
from . import deliveries as delivery_views
from . import logs as log_views
from . import revisions as revision_views
from . import samples as sample_views
from . import views

prefix = "t/<slug:slug>/triggers/"
one = prefix + "<slug:name>/"

urlpatterns = [
    path(prefix, views.trigger_list, name="ui-trigger-list"),
    path(prefix + "-/new/", views.trigger_create, name="ui-trigger-create"),
    path(one, views.trigger_detail, name="ui-trigger-detail"),
    path(one + "edit/", views.trigger_edit, name="ui-trigger-edit"),
    path(one + "deploy/", views.trigger_deploy, name="ui-trigger-deploy"),
    path(one + "redeploy/", views.trigger_redeploy, name="ui-trigger-redeploy"),
    path(one + "suspend/", views.trigger_suspend, name="ui-trigger-suspend"),
    path(one + "resume/", views.trigger_resume, name="ui-trigger-resume"),
    path(one + "delete/", views.trigger_delete, name="ui-trigger-delete"),
    path(one + "test-webhook/", sample_views.trigger_test_webhook_view, name="ui-trigger-test-webhook"),
    path(one + "logs/", log_views.trigger_logs, name="ui-trigger-logs"),
    path(one + "logs/download/", log_views.trigger_logs_download, name="ui-trigger-logs-download"),
    path(one + "rollback/", revision_views.trigger_rollback, name="ui-trigger-rollback"),
    path(one + "traffic/", revision_views.trigger_traffic, name="ui-trigger-traffic"),
    path(one + "rotate-token/", delivery_views.trigger_rotate_token, name="ui-trigger-rotate-token"),
    path(one + "deliveries/", delivery_views.delivery_list, name="ui-delivery-list"),
    path(one + "deliveries/replay-failed/", delivery_views.delivery_replay_failed, name="ui-delivery-replay-failed"),
    path(one + "deliveries/<uuid:delivery_id>/", delivery_views.delivery_detail, name="ui-delivery-detail"),
    path(one + "deliveries/<uuid:delivery_id>/replay/", delivery_views.delivery_replay, name="ui-delivery-replay"),
    path(one + "candidate-replays/", candidate_views.candidate_replay_list, name="ui-candidate-replays"),
    path(one + "candidate-replays/start/", candidate_views.candidate_replay_start, name="ui-candidate-replay-start"),
    path(one + "candidate-replays/<uuid:replay_id>/", candidate_views.candidate_replay_detail,
         name="ui-candidate-replay"),
    path(one + "candidate-replays/<uuid:replay_id>/promote/", candidate_views.candidate_replay_promote,
         name="ui-candidate-replay-promote"),
]
