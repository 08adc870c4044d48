"""kubesim's defaults are the real ones, read from the sources they come from: Knative 1.23's config maps
(../shared/fixtures/knative, as released in knative/serving knative-v1.23.0 config/core/configmaps), and
kube-apiserver's compaction interval. The simulator's own defaults and the CLI's must both match."""

from __future__ import annotations

import re

import yaml

from kubesim.__main__ import build_parser, config_from_args
from kubesim.config import SimConfig
from kubesim.knative_admission import DEFAULT_TIMEOUT, MAX_TIMEOUT
from tests.cluster import shared_fixtures


def knative_defaults(config_map: str) -> dict[str, str]:
    """The defaults a Knative config map documents: the `key: "value"` lines of its `_example` block
    (Knative's configmap webhook checks that block against the code's defaults by its checksum)."""
    path = shared_fixtures() / "knative" / f"knative-serving-knative-v1.23.0-{config_map}.yaml"
    example = yaml.safe_load(path.read_text())["data"]["_example"]
    return dict(re.findall(r'^([a-z0-9-]+): "?([^"\s#]*)', example, re.MULTILINE))


def seconds(duration: str) -> float:
    """A Go duration as Knative's config maps write them ("60s", "2m", "0s")."""
    value, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)", duration).groups()
    return float(value) * {"s": 1, "m": 60, "h": 3600}[unit]


def defaults() -> list[SimConfig]:
    return [SimConfig(), config_from_args(build_parser().parse_args([]))]


def test_autoscaler_timings_are_knative_1_23s_config_autoscaler():
    autoscaler = knative_defaults("config-autoscaler")
    assert autoscaler["enable-scale-to-zero"] == "true"  # kubesim always scales an idle revision to zero
    for config in defaults():
        assert config.stable_window == seconds(autoscaler["stable-window"])
        assert config.scale_to_zero_grace == seconds(autoscaler["scale-to-zero-grace-period"])


def test_revision_timeouts_are_knative_1_23s_config_defaults():
    revision = knative_defaults("config-defaults")
    assert DEFAULT_TIMEOUT == int(revision["revision-timeout-seconds"])
    assert MAX_TIMEOUT == int(revision["max-revision-timeout-seconds"])


def test_progress_deadline_and_activation_timeout_are_knative_1xs():
    # config-deployment is not among the fixtures: knative/serving knative-v1.23.0 pkg/deployment/config.go
    # ProgressDeadlineDefault = 600 s; the KPA's activation timeout is it + activationTimeoutBuffer 30 s
    # (pkg/reconciler/autoscaling/kpa/scaler.go)
    for config in defaults():
        assert (config.progress_deadline, config.activation_timeout_for()) == (600.0, 630.0)


def test_compaction_every_5_minutes_as_kube_apiserver():
    # kubernetes staging/src/k8s.io/apiserver/pkg/storage/storagebackend/config.go:
    # DefaultCompactInterval = 5 * time.Minute, the default of --etcd-compaction-interval
    for config in defaults():
        assert config.compact_interval == 300.0
