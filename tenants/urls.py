from django.urls import path

from . import signin, views

urlpatterns = [
    *signin.urlpatterns,
    path("", views.tenant_list, name="tenant-list"),
    path("tenants/new/", views.tenant_create, name="tenant-create"),
    path("t/<slug:slug>/", views.tenant_detail, name="tenant-detail"),
    path("t/<slug:slug>/settings/", views.tenant_settings, name="tenant-settings"),
    path("t/<slug:slug>/delete/", views.tenant_delete, name="tenant-delete"),
    path("t/<slug:slug>/provision/", views.tenant_provision, name="tenant-provision-retry"),
    path("t/<slug:slug>/members/", views.member_list, name="member-list"),
    path("t/<slug:slug>/audit/", views.audit_list, name="tenant-audit"),
    path("t/<slug:slug>/members/<int:pk>/role/", views.member_role, name="member-role"),
    path("t/<slug:slug>/members/<int:pk>/remove/", views.member_remove, name="member-remove"),
    path("t/<slug:slug>/invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path("invitations/<int:pk>/accept/", views.invitation_accept_mine, name="invitation-accept-mine"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("account/tokens/", views.token_list, name="token-list"),
    path("account/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]
