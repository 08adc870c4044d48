"""The import-linter contracts of pyproject.toml (the enforced part of ARCHITECTURE.md) hold: `make test`
fails on a new import circle, or on an import that points the wrong way between packages."""

from importlinter.cli import lint_imports

from tests.cluster import REPO


def test_import_contracts_hold(monkeypatch):
    monkeypatch.chdir(REPO)
    assert lint_imports(no_cache=True) == 0, "lint-imports failed: see the broken contracts above"


def test_triggers_answers_what_tenants_asks():
    """tenants asks through tenants.hooks (it may not import triggers); triggers connects in ready(). Without a
    listener, a new tenant's namespace would silently never be provisioned."""
    from tenants import hooks
    from triggers import hooks as triggers_hooks

    for signal in (hooks.provision_requested, hooks.teardown_requested, hooks.access_revoked):
        assert signal.has_listeners(), signal
    assert hooks._overview is triggers_hooks._overview
