"""Just enough of the Kubernetes protobuf wire format to read the bodies kubectl's typed generators send.

`kubectl create namespace|configmap|secret generic` POST `application/vnd.kubernetes.protobuf` (the
`k8s\\0` + runtime.Unknown envelope). We decode the metadata (name, generateName, namespace, labels,
annotations) and, for ConfigMaps and Secrets, their data; anything else answers 415.
"""

from __future__ import annotations

import base64
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs; length-delimited values stay bytes."""
    out, i = [], 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((num, value))
    return out


def _map(entries: list[bytes], as_bytes: bool = False) -> dict[str, Any]:
    out = {}
    for entry in entries:
        kv = dict(_fields(entry))
        v = kv.get(2, b"")
        out[kv.get(1, b"").decode()] = base64.b64encode(v).decode() if as_bytes else v.decode()
    return out


def _meta(buf: bytes) -> dict:
    meta: dict[str, Any] = {}
    labels, annotations = [], []
    for num, v in _fields(buf):
        if num in (1, 2, 3):
            meta[{1: "name", 2: "generateName", 3: "namespace"}[num]] = v.decode()
        elif num == 11:
            labels.append(v)
        elif num == 12:
            annotations.append(v)
    if labels:
        meta["labels"] = _map(labels)
    if annotations:
        meta["annotations"] = _map(annotations)
    return meta


def decode(raw: bytes) -> dict:
    """The JSON-equivalent object of a protobuf request body (415 for kinds we cannot read)."""
    try:
        if not raw.startswith(MAGIC):
            raise ValueError("missing k8s protobuf magic")
        env = dict(_fields(raw[len(MAGIC):]))
        type_meta = dict(_fields(env.get(1, b"")))
        api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
        fields = _fields(env.get(2, b""))
        obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
        data = [v for n, v in fields if n == 2]
        for num, v in fields:
            if num == 1:
                obj["metadata"] = _meta(v)
        if kind == "ConfigMap" and data:
            obj["data"] = _map(data)
        elif kind == "Secret":
            if data:
                obj["data"] = _map(data, as_bytes=True)
            for num, v in fields:
                if num == 3:
                    obj["type"] = v.decode()
        elif kind != "Namespace":
            raise ValueError(f"protobuf bodies for {kind or 'this kind'} are not supported")
        return obj
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise ApiError(415, "UnsupportedMediaType",
                       f"kubesim reads application/vnd.kubernetes.protobuf only for Namespace, "
                       f"ConfigMap and Secret; send JSON ({e})", {}) from None
