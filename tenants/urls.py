from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
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
    path("account/tokens/", views.token_list, name="token-list"),
    path("account/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]
