from django import forms

from .models import SLUG_MAX_LENGTH, Role, slug_validator


class TenantCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Display name, e.g. “Payments team”.")
    slug = forms.CharField(
        max_length=SLUG_MAX_LENGTH,
        validators=[slug_validator],
        help_text="Lowercase letters, digits and hyphens; used in URLs and the Kubernetes namespace. "
        "It cannot change later.",
    )


class TenantSettingsForm(forms.Form):
    name = forms.CharField(max_length=100)


class InvitationForm(forms.Form):
    email = forms.CharField(max_length=254, help_text="They get a link to accept, valid for 7 days.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “CI deploys”.")
