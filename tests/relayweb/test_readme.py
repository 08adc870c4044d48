"""The README documents every setting that relayweb/settings.py reads from the environment."""

import re

from tests.cluster import REPO


def settings_read_from_env() -> set[str]:
    source = (REPO / "relayweb" / "settings.py").read_text()
    return set(re.findall(r'(?:envbool|envint|envsecret|envlist|os\.getenv)\(\s*"([A-Z_]+)"', source))


def test_every_setting_is_in_the_readme_table():
    readme = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| (`[A-Z_]+`.*?) \|", readme, flags=re.MULTILINE)
    documented = {name for row in rows for name in re.findall(r"`([A-Z_]+)`", row)}
    names = settings_read_from_env()
    assert len(names) > 10
    assert names - documented == set(), "document these settings in README.md"
