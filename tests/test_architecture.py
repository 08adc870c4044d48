"""The import-linter contracts of pyproject.toml (the enforced part of ARCHITECTURE.md) hold: `make test`
fails on a new import circle, or on an import that points the wrong way between packages."""

from importlinter.cli import lint_imports

from tests.cluster import REPO


def test_import_contracts_hold(monkeypatch):
    monkeypatch.chdir(REPO)
    assert lint_imports(no_cache=True) == 0, "lint-imports failed: see the broken contracts above"
