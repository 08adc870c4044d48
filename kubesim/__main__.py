"""`python -m kubesim`: run the simulated cluster (API server, Ambassador gateway and admin ports).

Every SimConfig knob is a flag, so `make run` and subprocess tests can choose timings; SIGTERM/SIGINT stop
the servers cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from .config import SimConfig
from .sim import Simulator

DEFAULT_API = "127.0.0.1:8001"
DEFAULT_GATEWAY = "127.0.0.1:8081"
DEFAULT_ADMIN = "127.0.0.1:8877"


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _denial(text: str) -> tuple[str, str, str, str | None]:
    verb, _, rest = text.partition(":")
    resource, _, namespace = rest.partition(":")
    plural, _, group = resource.partition(".")
    if not verb or not plural:
        raise argparse.ArgumentTypeError(f"expected VERB:RESOURCE[.GROUP][:NAMESPACE], got {text!r}")
    return group, plural, verb, namespace or None


GC_KEYS = ("retain-since-create-time", "retain-since-last-active-time", "min-non-active-revisions",
           "max-non-active-revisions")


def _config_gc(text: str) -> dict[str, str]:
    """config-gc settings as JSON ('{"min-non-active-revisions": "0"}') or KEY=VALUE pairs separated by
    commas or spaces ('retain-since-create-time=1s,min-non-active-revisions=0')."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
        if not isinstance(data, dict):
            raise argparse.ArgumentTypeError("expected a JSON object")
    else:
        data = {}
        for pair in text.replace(",", " ").split():
            key, sep, value = pair.partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {pair!r}")
            data[key.strip()] = value.strip()
    unknown = sorted(set(data) - set(GC_KEYS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown config-gc key(s) {', '.join(unknown)}; "
                                         f"known: {', '.join(GC_KEYS)}")
    return {key: str(value) for key, value in data.items()}


def build_parser() -> argparse.ArgumentParser:
    d = SimConfig()
    p = argparse.ArgumentParser(
        prog="python -m kubesim",
        description="A simulated Kubernetes API server + Knative Serving + Ambassador for development "
                    "and tests. Port 0 picks a free port.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--api", type=_hostport, default=DEFAULT_API, metavar="HOST:PORT",
      help="Kubernetes API server address")
    a("--gateway", type=_hostport, default=DEFAULT_GATEWAY, metavar="HOST:PORT",
      help="Ambassador data-plane (gateway) address")
    a("--admin", type=_hostport, default=DEFAULT_ADMIN, metavar="HOST:PORT",
      help="Ambassador admin address (diag, check_alive, check_ready)")
    a("--kubeconfig", metavar="PATH", default=None,
      help="write a kubeconfig (server, bearer token, context) to PATH")
    a("--tls", action="store_true",
      help="serve the API over HTTPS with a self-signed certificate (put in the kubeconfig); "
           "kubectl sends the token only over TLS, so use this for kubectl")
    a("--token", default=None, help="bearer token the API requires (default: a random one)")
    a("--user", default=d.user, help="user name the token authenticates as (Knative's creator)")
    a("--image-pull-delay", type=_positive, default=d.image_pull_delay, metavar="SECONDS",
      help="simulated image pull time (Pulling -> Pulled)")
    a("--start-delay", type=_positive, default=d.start_delay, metavar="SECONDS",
      help="container start until the readiness probe passes")
    a("--stable-window", type=_positive, default=d.stable_window, metavar="SECONDS",
      help="autoscaler stable window: no traffic for this long ...")
    a("--scale-to-zero-grace", type=_positive, default=d.scale_to_zero_grace, metavar="SECONDS",
      help="... plus this grace period scales a revision to zero")
    a("--progress-deadline", type=_positive, default=d.progress_deadline, metavar="SECONDS",
      help="config-deployment progress-deadline: image pull back-off / crash loop marks the revision "
           "failed after this (a revision's serving.knative.dev/progress-deadline annotation wins)")
    a("--activation-timeout", type=_positive, default=d.activation_timeout, metavar="SECONDS",
      help="the KPA gives up on a cold start after this (default: the revision's progress deadline + 30 s)")
    a("--termination-grace", type=_positive, default=d.termination_grace, metavar="SECONDS",
      help="a deleted pod stays terminating (deletionTimestamp, not ready) this long before it goes")
    a("--queue-depth", type=int, default=d.queue_depth, metavar="N",
      help="activator queue depth per revision (beyond it: 503 pending request queue full)")
    a("--route-timeout", type=_positive, default=d.route_timeout, metavar="SECONDS",
      help="Emissary's route timeout for Knative Mappings (15 s, as for Knative 1.x KIngresses): the "
           "whole upstream request, cold start included, is cut at this with Envoy's 504; 0 disables it")
    a("--route-ready-delay", type=_positive, default=d.route_ready_delay, metavar="SECONDS",
      help="a host answers Envoy's empty 404 for this long after its KIngress became Ready "
           "(Envoy is programmed after Emissary marks the KIngress Ready)")
    a("--watch-history", type=int, default=d.watch_history, metavar="N",
      help="watch events kept for resume; older resourceVersions get 410 Expired")
    a("--compact-interval", type=_positive, default=d.compact_interval, metavar="SECONDS",
      help="compact the watch history every interval (to the previous interval's resourceVersion), "
           "as kube-apiserver's --etcd-compaction-interval; 0: never")
    a("--bookmark-interval", type=_positive, default=d.bookmark_interval, metavar="SECONDS",
      help="interval of watch BOOKMARK events (when the client allows them)")
    a("--kube-version", default=d.kube_version, metavar="X.Y.Z",
      help="the Kubernetes version /version reports")
    a("--knative-version", default=d.knative_version, metavar="X.Y.Z",
      help="Knative Serving's release, on the knative-serving namespace's app.kubernetes.io/version label "
           "(empty: no label)")
    a("--knative-crds", action=argparse.BooleanOptionalAction, default=d.knative_crds,
      help="Knative Serving's CRDs are installed (--no-knative-crds: no *.knative.dev API group is served)")
    a("--ambassador-id", default=d.ambassador_id, help="Ambassador's ambassador_id (reported by its diag)")
    a("--knative-support", action=argparse.BooleanOptionalAction, default=d.knative_support,
      help="AMBASSADOR_KNATIVE_SUPPORT (the diag's knative_enabled)")
    a("--denied", type=_denial, action="append", default=[], metavar="VERB:RESOURCE[.GROUP][:NAMESPACE]",
      help="an RBAC denial (repeatable): such calls answer 403 and access reviews allowed=false")
    a("--domain", default=d.domain, help="domain of non-cluster-local Knative services")
    a("--pod-logs-split-streams", action=argparse.BooleanOptionalAction, default=d.pod_logs_split_streams,
      help="feature gate PodLogsQuerySplitStreams: pods/log honours stream=All|Stdout|Stderr "
           "(--no-pod-logs-split-streams: the parameter is ignored)")
    a("--config-gc", type=_config_gc, default=None, metavar="JSON|KEY=VALUE,...",
      help="Knative's config-gc for the revision GC, e.g. 'retain-since-create-time=1s,"
           "retain-since-last-active-time=1s,min-non-active-revisions=0' or the same as JSON; keys: "
           + ", ".join(GC_KEYS) + " ('disabled' turns a limit off). Knative's defaults otherwise "
           "(48h, 15h, 20, 1000); a config-gc ConfigMap in knative-serving overrides it key by key "
           "(SimConfig.extra['config-gc'])")
    a("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
      help="logging level")
    return p


def config_from_args(ns: argparse.Namespace) -> SimConfig:
    (api_host, api_port), (gw_host, gw_port), (ad_host, ad_port) = ns.api, ns.gateway, ns.admin
    return SimConfig(
        api_host=api_host, api_port=api_port, gateway_host=gw_host, gateway_port=gw_port,
        admin_host=ad_host, admin_port=ad_port, kubeconfig=ns.kubeconfig, token=ns.token,
        api_tls=ns.tls,
        user=ns.user, image_pull_delay=ns.image_pull_delay, start_delay=ns.start_delay,
        stable_window=ns.stable_window, scale_to_zero_grace=ns.scale_to_zero_grace,
        progress_deadline=ns.progress_deadline, activation_timeout=ns.activation_timeout,
        queue_depth=ns.queue_depth, route_timeout=ns.route_timeout or None,
        route_ready_delay=ns.route_ready_delay, watch_history=ns.watch_history,
        bookmark_interval=ns.bookmark_interval, domain=ns.domain, kube_version=ns.kube_version,
        ambassador_id=ns.ambassador_id, knative_support=ns.knative_support, denied=list(ns.denied),
        knative_version=ns.knative_version, knative_crds=ns.knative_crds,
        compact_interval=ns.compact_interval, termination_grace=ns.termination_grace,
        pod_logs_split_streams=ns.pod_logs_split_streams,
        extra={"config-gc": ns.config_gc} if ns.config_gc else {})


async def run(config: SimConfig) -> None:
    sim = Simulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    # One parseable line for scripts that start us on port 0.
    print(f"kubesim ready api={sim.api_url} gateway={sim.gateway_url} admin={sim.admin_url}"
          + (f" kubeconfig={sim.kubeconfig_path}" if sim.kubeconfig_path else ""), flush=True)
    await stop.wait()
    logging.getLogger("kubesim").info("shutting down")
    await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(config_from_args(args)))
    except OSError as e:  # e.g. address in use
        print(f"kubesim: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
