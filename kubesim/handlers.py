"""Simulated handler containers: the image name picks what a pod does.

Nothing runs a real image; a pod of kubesim is a small Python object. The image's last path
component (the "name") and its tag choose a behaviour, so tests and `make run` can provoke every
Knative state (missing image, pull back-off, crash loop, slow start, error codes) or a log-heavy pod
(`chatty:<lines per second>`) just by picking an image. Unknown images behave like the echo server,
whatever the registry. See the README table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SLOW_START = 5.0
DEFAULT_SLOW_RESPONSE = 1.0
ECHO_BODY_LIMIT = 4096  # echo the body text itself only when it is small UTF-8
DEFAULT_BIG_SIZE = 1024 * 1024
DEFAULT_CHATTY_RATE = 10.0       # chatty: log lines per second when the tag gives none
MAX_CHATTY_RATE = 10000.0        # cap, so one pod cannot monopolise the event loop
_CHATTER_TICK = 0.02             # the chatty writer wakes at most every 20 ms and writes the lines due
_SIZE_UNITS = {"": 1, "K": 1000, "Ki": 1024, "M": 1000 ** 2, "Mi": 1024 ** 2, "G": 1000 ** 3, "Gi": 1024 ** 3}


@dataclass(frozen=True)
class ImageRef:
    """An image reference split the way registries see it."""

    registry: str
    repository: str
    tag: str
    digest: str | None

    @property
    def name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

    @property
    def manifest_url(self) -> str:
        host = "index.docker.io" if self.registry == "docker.io" else self.registry
        return f"https://{host}/v2/{self.repository}/manifests/{self.digest or self.tag}"


def parse_image(image: str) -> ImageRef:
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", image
    tag = "latest"
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    if registry == "docker.io" and "/" not in path:
        path = "library/" + path
    return ImageRef(registry, path, tag, digest)


def image_digest(image: str) -> str:
    """A stable fake digest, `<repo>@sha256:<hex>`, as Knative records after resolving a tag."""
    ref = parse_image(image)
    if ref.digest:
        return f"{image.split('@', 1)[0].rsplit(':', 1)[0]}@{ref.digest}"
    hexd = hashlib.sha256(image.encode()).hexdigest()
    base = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{base}@sha256:{hexd}"


def _duration(tag: str, default: float) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", tag)
    if not m:
        return default
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value * 60 if m.group(2) == "m" else value


def _int(tag: str, default: int) -> int:
    return int(tag) if tag.isdigit() else default


def _rate(tag: str, default: float) -> float:
    """`chatty:20`, `chatty:0.5`: lines per second (capped at MAX_CHATTY_RATE)."""
    m = re.fullmatch(r"\d+(?:\.\d+)?", tag)
    return min(float(tag), MAX_CHATTY_RATE) if m else default


def _size(tag: str, default: int) -> int:
    """`200Mi`, `64Ki`, `1G`, `5000` (bytes), as Kubernetes quantities are written."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|K|M|G)?", tag)
    return int(m.group(1)) * _SIZE_UNITS[m.group(2) or ""] if m else default


class Generated:
    """A response body produced while it is written (never held whole): `size` bytes of a fixed pattern."""

    BLOCK = bytes(range(256)) * 256  # 64 KiB

    __slots__ = ("size",)

    def __init__(self, size: int):
        self.size = size

    def chunks(self):
        whole, rest = divmod(self.size, len(self.BLOCK))
        for _ in range(whole):
            yield self.BLOCK
        if rest:
            yield self.BLOCK[:rest]


@dataclass
class Behaviour:
    """What a container built from an image does; decided once per revision."""

    kind: str = "echo"                 # echo | hello | status | slow | flaky | big | chatty
    digest_error: str | None = None    # digest resolution fails with this error (ContainerMissing)
    pull_error: str | None = None      # kubelet cannot pull (ErrImagePull / ImagePullBackOff)
    crash: bool = False                # container exits with code 1 after starting (ExitCode1)
    crash_message: str = ""
    crash_exit_code: int = 1
    crash_reason: str = "Error"        # lastState.terminated.reason the runtime reports
    start_delay: float = 0.0           # extra seconds before the readiness probe passes
    status: int = 200
    delay: float = 0.0                 # per-request delay before answering
    fail_times: int = 0                # flaky: first N requests per pod answer 500
    size: int = 0                      # big: bytes of the response body
    log_rate: float = 0.0              # chatty: `tick <n>` lines per second written to stdout while running
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_async(self) -> bool:
        return self.kind == "slow"


def behaviour_for(image: str, env: dict[str, str] | None = None) -> Behaviour:
    """Map an image reference to a behaviour (documented in kubesim/README.md, "Handlers")."""
    ref = parse_image(image)
    name, tag = ref.name, ref.tag
    b = Behaviour(env=dict(env or {}))
    if name == "pull-fail" or tag == "missing":
        b.digest_error = (f"failed to resolve image to digest: GET {ref.manifest_url}: "
                          f"MANIFEST_UNKNOWN: manifest unknown; map[Tag:{tag}]")
    elif name == "pull-backoff":
        b.pull_error = (f'failed to pull and unpack image "{image}": failed to resolve reference '
                        f'"{image}": pull access denied, repository does not exist or may require '
                        "authorization: insufficient_scope: authorization failed")
    elif name in ("crash", "crashloop"):
        b.crash = True
        b.crash_message = "kubesim: simulated crash, exit status 1"
    elif name in ("oom", "oomkilled"):
        # the kernel's OOM killer ends the process (SIGKILL): the runtime reports reason OOMKilled and
        # exit code 137 with no message, the kubelet copies both into the container's terminated state
        # (kubernetes pkg/kubelet/kubelet_pods.go convertToAPIContainerStatuses)
        b.crash, b.crash_exit_code, b.crash_reason = True, 137, "OOMKilled"
    elif name == "slow-start":
        b.start_delay = _duration(tag, DEFAULT_SLOW_START)
    elif name == "status":
        b.kind, b.status = "status", _int(tag, 500)
    elif name == "slow":
        b.kind, b.delay = "slow", _duration(tag, DEFAULT_SLOW_RESPONSE)
    elif name == "flaky":
        b.kind, b.fail_times = "flaky", _int(tag, 1)
    elif name == "big":
        b.kind, b.size = "big", _size(tag, DEFAULT_BIG_SIZE)
    elif name == "chatty":
        # answers as echo; while the container runs it also prints `tick <n>` lines at this rate
        b.kind, b.log_rate = "chatty", _rate(tag, DEFAULT_CHATTY_RATE)
    elif "helloworld" in name:
        b.kind = "hello"
    return b


@dataclass
class Request:
    """What the gateway hands a handler: the request as the user container would see it."""

    method: str
    path: str
    query: str
    headers: Any      # a multidict-like mapping
    body: bytes
    # The revision whose pod answers (the K_REVISION env var Knative gives the user container); the echo
    # handler reports it in its body so tests can count who served a traffic split.
    revision: str = ""


Response = tuple[int, bytes | Generated, str]   # status, body, content type


def echo_payload(req: Request, pod: str = "") -> dict[str, Any]:
    body = req.body
    payload: dict[str, Any] = {
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "headers": dict(req.headers),
        "body_size": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    if len(body) <= ECHO_BODY_LIMIT:
        try:
            payload["body"] = body.decode()
        except UnicodeDecodeError:
            pass
    if pod:
        payload["pod"] = pod
    if req.revision:
        payload["revision"] = req.revision
    return payload


DELIVERY_HEADER = "X-Relay-Delivery-Id"


def _no_log(text: str) -> None:
    pass


def startup_line(behaviour: Behaviour, image: str, pod: str) -> str:
    """What a handler prints when it starts (its first log line; see the README, "Pod logs")."""
    return f"kubesim handler {behaviour.kind} started: image={image} pod={pod} listening on :8080"


def crash_line(behaviour: Behaviour) -> str:
    """What a crashing handler prints just before it dies."""
    if behaviour.crash_message:
        return behaviour.crash_message
    return "kubesim: simulated out of memory: allocating until the OOM killer ends the process"


def tick_line(n: int) -> str:
    """The chatty handler's n-th periodic line (n from 1; distinct within one run of the container)."""
    return f"tick {n}"


async def chatter(log: Any, rate: float) -> None:
    """The chatty handler's writer: `tick <n>` lines to `log` (a podlogs.LogInstance: `write`, `running`)
    at `rate` lines per second, paced from its start (lines due after a stall are written at once, at
    most a second's worth). It ends when the container stops (`log.running` false: crash, pod deleted,
    simulator stopped) or when cancelled."""
    if rate <= 0:
        return
    loop = asyncio.get_running_loop()
    period = 1.0 / rate
    start, written = loop.time(), 0
    while log.running:
        due = int((loop.time() - start) * rate)
        if due > written:
            first = max(written + 1, due - max(int(rate), 1) + 1)
            log.write("\n".join(tick_line(n) for n in range(first, due + 1)))
            written = due
        next_at = start + (written + 1) * period
        await asyncio.sleep(max(next_at - loop.time(), _CHATTER_TICK))


def request_line(req: Request, status: int) -> str:
    """One line per request, carrying the X-Relay-Delivery-Id header's value ("-" when absent)."""
    delivery = req.headers.get(DELIVERY_HEADER) or "-"
    return f"{req.method} {req.path} {status} {DELIVERY_HEADER}={delivery}"


class Container:
    """One running user container of one pod (per-pod state such as the flaky counter lives here).
    `log` prints a line to the current run's stdout (kubesim.podlogs; the runtime sets it)."""

    __slots__ = ("behaviour", "pod", "served", "is_async", "log")

    def __init__(self, behaviour: Behaviour, pod: str):
        self.behaviour = behaviour
        self.pod = pod
        self.served = 0
        self.is_async = behaviour.is_async
        self.log = _no_log

    def respond(self, req: Request) -> Response:
        """Answer synchronously (every behaviour except `slow`), logging one line per request."""
        out = self._answer(req)
        self.log(request_line(req, out[0]))
        return out

    def _answer(self, req: Request) -> Response:
        b = self.behaviour
        self.served += 1
        kind = b.kind
        if kind == "hello":
            return 200, f"Hello {b.env.get('TARGET', 'World')}!\n".encode(), "text/plain"
        if kind == "status":
            return b.status, json.dumps({"status": b.status, "pod": self.pod}).encode(), \
                "application/json"
        if kind == "big":
            return 200, Generated(b.size), "application/octet-stream"
        if kind == "flaky" and self.served <= b.fail_times:
            return 500, json.dumps({"error": "flaky failure", "attempt": self.served,
                                    "pod": self.pod}).encode(), "application/json"
        return 200, json.dumps(echo_payload(req, self.pod)).encode(), "application/json"

    async def respond_async(self, req: Request) -> Response:
        await asyncio.sleep(self.behaviour.delay)
        return self.respond(req)
