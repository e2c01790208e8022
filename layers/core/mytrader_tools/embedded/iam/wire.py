"""An HTTP request read back into botocore's terms (service, operation, parameters), validated against the service
model; and a local service's response walked against the operation's output shape.

Protocols: json (X-Amz-Target), query (Action), rest-json and rest-xml (the operation whose method and URI
template match, the most specific first). The service is named by the request's SigV4 credential scope; one
signing name may stand for several models (bedrock: the control plane and the runtime).
"""
from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote

import boto3
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

# signing name (credential scope) -> botocore service names, when they differ
SIGNING_NAMES = {"bedrock": ("bedrock-runtime", "bedrock"), "states": ("stepfunctions",),
                 "monitoring": ("cloudwatch",), "email": ("ses", "sesv2")}
# errors any operation may answer (AWS's common errors), beside the operation's modelled ones
COMMON_ERRORS = frozenset({
    "AccessDeniedException", "AccessDenied", "ThrottlingException", "Throttling", "InternalFailure",
    "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException", "ValidationError",
    "ValidationException", "IncompleteSignature", "InvalidClientTokenId", "UnrecognizedClientException",
    "RequestExpired", "NotAuthorized"})


class WireError(ValueError):
    """The request is no operation of the service's model."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # as sent: percent-encoded
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass
class Call:
    service: str  # botocore's name
    operation: OperationModel
    params: dict[str, Any]
    errors: list[str] = field(default_factory=list)  # request validation

    @property
    def protocol(self) -> str:
        return str(self.operation.service_model.resolved_protocol)


@cache
def service_model(name: str) -> ServiceModel:
    return boto3.session.Session()._session.get_service_model(name)  # noqa: SLF001  # botocore's loader, cached


@cache
def _validator() -> ParamValidator:
    return ParamValidator()


def read(signing_name: str, req: HttpRequest) -> Call:
    """The operation and parameters of a request (WireError when none matches), validated."""
    last: WireError | None = None
    for name in SIGNING_NAMES.get(signing_name, (signing_name,)):
        try:
            model = service_model(name)
        except Exception:  # no such model in botocore
            continue
        try:
            call = _read(name, model, req)
        except WireError as exc:
            last = exc
            continue
        shape = call.operation.input_shape
        if shape is not None:
            report = _validator().validate(call.params, shape)
            if report.has_errors():
                call.errors.append(report.generate_report())
        return call
    raise last or WireError(f"no botocore service model for signing name {signing_name!r}")


def _read(name: str, model: ServiceModel, req: HttpRequest) -> Call:
    protocol = model.resolved_protocol
    if protocol == "json":
        target = req.headers.get("x-amz-target", "")
        prefix, _, op = target.rpartition(".")
        if prefix != model.metadata.get("targetPrefix") or op not in model.operation_names:
            raise WireError(f"{name}: no operation for X-Amz-Target {target!r}")
        operation = model.operation_model(op)
        return Call(name, operation, _from_json(operation.input_shape, json.loads(req.body or b"{}")))
    if protocol == "query":
        form = dict(parse_qsl(req.body.decode() if req.body else "", keep_blank_values=True)) or dict(req.query)
        op = form.pop("Action", "")
        form.pop("Version", None)
        if op not in model.operation_names:
            raise WireError(f"{name}: no operation {op!r}")
        operation = model.operation_model(op)
        return Call(name, operation, _from_query(operation.input_shape, form, ""))
    if protocol in ("rest-json", "rest-xml"):
        operation, labels = _match_rest(name, model, req)
        return Call(name, operation, _rest_params(operation, labels, req, protocol))
    raise WireError(f"{name}: protocol {protocol} is not read by the embedded AWS")


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    query: tuple[tuple[str, str | None], ...]
    operation: str
    labels: dict[str, str]  # regex group -> label name
    specificity: tuple[int, int] = (0, 0)  # literal characters of the URI, required query parameters


@cache
def _routes(name: str) -> list[_Route]:
    model = service_model(name)
    routes = []
    for op in model.operation_names:
        http = model.operation_model(op).http
        uri, _, qs = http.get("requestUri", "/").partition("?")
        regex, labels = [], {}
        for i, part in enumerate(re.split(r"(\{[^}]+\})", uri)):
            if part.startswith("{"):
                label = part[1:-1]
                group = f"g{i}"
                labels[group] = label.rstrip("+")
                regex.append(f"(?P<{group}>.+)" if label.endswith("+") else f"(?P<{group}>[^/]+)")
            else:
                regex.append(re.escape(part))
        query = tuple((k, v or None) for k, _, v in (p.partition("=") for p in qs.split("&") if p))
        literal = len(re.sub(r"\{[^}]+\}", "", uri))
        routes.append(_Route(http.get("method", "POST"), re.compile("".join(regex) + "/?"), query, op, labels,
                             (literal, len(query))))
    routes.sort(key=lambda r: r.specificity, reverse=True)  # the most specific first
    return routes


def _match_rest(name: str, model: ServiceModel, req: HttpRequest) -> tuple[OperationModel, dict[str, str]]:
    """The most specific route that matches; among routes alike (S3's PutObject and CopyObject, DeleteObject and
    AbortMultipartUpload), the one whose required headers and query parameters the request carries, the most of
    them (a route whose required ones are missing is not this request's)."""
    present = {k: v for k, v in req.query}
    best: tuple[int, _Route, re.Match[str]] | None = None
    for route in _routes(name):
        if best is not None and route.specificity < best[1].specificity:
            break
        if route.method != req.method:
            continue
        m = route.pattern.fullmatch(req.path)
        if m is None or any(k not in present or (v is not None and present[k] != v) for k, v in route.query):
            continue
        operation = model.operation_model(route.operation)
        headers, query = _required(operation, "header"), _required(operation, "querystring")
        if any(h.lower() not in req.headers for h in headers) or any(q not in present for q in query):
            continue
        if best is None or len(headers) + len(query) > best[0]:
            best = (len(headers) + len(query), route, m)
    if best is None:
        raise WireError(f"{name}: no operation matches {req.method} {req.path}")
    _, route, m = best
    return model.operation_model(route.operation), {route.labels[g]: unquote(v) for g, v in m.groupdict().items()}


def _required(op: OperationModel, location: str) -> list[str]:
    """The wire names of the operation's required members sent in the headers or the query string."""
    shape = op.input_shape
    if shape is None:
        return []
    return [shape.members[n].serialization.get("name", n) for n in shape.required_members
            if shape.members[n].serialization.get("location") == location]


def _rest_params(operation: OperationModel, labels: dict[str, str], req: HttpRequest, protocol: str) -> dict:
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    body_members = False
    for name, member in shape.members.items():
        loc, wire = member.serialization.get("location"), member.serialization.get("name", name)
        if loc == "uri" and wire in labels:
            params[name] = _scalar(member, labels[wire])
        elif loc == "querystring":
            _query_member(params, name, member, wire, req.query)
        elif loc == "header" and wire.lower() in req.headers:
            params[name] = _header(member, req.headers[wire.lower()])
        elif loc == "headers":
            found = {k[len(wire):]: v for k, v in req.headers.items() if k.startswith(wire.lower())}
            if found:
                params[name] = found
        elif loc is None:
            body_members = True
    payload = shape.serialization.get("payload")
    if payload and req.body:
        member = shape.members[payload]
        if member.type_name in ("blob", "string"):
            params[payload] = req.body if member.type_name == "blob" else req.body.decode()
        else:
            params[payload] = _from_body(member, req.body, protocol)
    elif body_members and not payload and req.body:
        params.update(_from_body(shape, req.body, protocol))
    return params


def _from_body(shape: Shape, body: bytes, protocol: str) -> Any:
    if protocol == "rest-json":
        return _from_json(shape, json.loads(body))
    root = ET.fromstring(body)
    return _from_xml(shape, root)


def _query_member(params: dict, name: str, member: Shape, wire: str, query: tuple[tuple[str, str], ...]) -> None:
    if member.type_name == "map":
        return  # a catch-all of the remaining query parameters: not used by the services called here
    values = [v for k, v in query if k == wire]
    if not values:
        return
    if member.type_name == "list":
        params[name] = [_scalar(member.member, v) for v in values]
    else:
        params[name] = _scalar(member, values[0])


def _header(member: Shape, value: str) -> Any:
    if member.type_name == "list":
        return [_scalar(member.member, v.strip()) for v in value.split(",")]
    if member.type_name == "string" and member.serialization.get("jsonvalue"):
        return json.loads(base64.b64decode(value))
    return _scalar(member, value)


def _scalar(shape: Shape, text: str) -> Any:
    t = shape.type_name
    if t in ("integer", "long"):
        return int(text) if re.fullmatch(r"-?\d+", text) else text
    if t in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            return text
    if t == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def _from_json(shape: Shape | None, value: Any) -> Any:
    """Wire names to member names, epoch timestamps to datetimes; anything unknown is kept (validation reports)."""
    if shape is None:
        return value
    t = shape.type_name
    if t == "structure" and isinstance(value, dict) and not getattr(shape, "is_document_type", False):
        by_wire = _by_wire(shape)
        out = {}
        for k, v in value.items():
            n, m = by_wire.get(k, (k, None))
            out[n] = _from_json(m, v) if m is not None else v
        return out
    if t == "list" and isinstance(value, list):
        return [_from_json(shape.member, v) for v in value]
    if t == "map" and isinstance(value, dict):
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    if t == "timestamp" and isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return value


_WIRE_NAMES: dict[int, tuple[Shape, dict[str, tuple[str, Shape]]]] = {}


def _by_wire(shape: Shape) -> dict[str, tuple[str, Shape]]:
    """A structure's members by their wire names (once per shape: the models are loaded once per process)."""
    found = _WIRE_NAMES.get(id(shape))
    if found is None or found[0] is not shape:
        found = _WIRE_NAMES[id(shape)] = (shape, {m.serialization.get("name", n): (n, m)
                                                  for n, m in shape.members.items()})
    return found[1]


def _from_query(shape: Shape | None, form: dict[str, str], prefix: str) -> Any:
    """The query protocol's flattened keys (A.member.1, M.entry.1.key) back into a structure."""
    if shape is None:
        return {}
    t = shape.type_name
    if t == "structure":
        out = {}
        for n, m in shape.members.items():
            wire_name = m.serialization.get("name", n)
            key = f"{prefix}.{wire_name}" if prefix else wire_name
            if key in form or any(k.startswith(key + ".") for k in form):
                out[n] = _from_query(m, form, key)
        if not prefix:  # unknown top-level keys are reported by the validator
            known = {m.serialization.get("name", n) for n, m in shape.members.items()}
            out.update({k: v for k, v in form.items() if k.split(".")[0] not in known})
        return out
    if t == "list":
        member = shape.member
        step = "" if shape.serialization.get("flattened") else f".{member.serialization.get('name', 'member')}"
        items, i = [], 1
        while f"{prefix}{step}.{i}" in form or any(k.startswith(f"{prefix}{step}.{i}.") for k in form):
            items.append(_from_query(member, form, f"{prefix}{step}.{i}"))
            i += 1
        return items
    if t == "map":
        step = "" if shape.serialization.get("flattened") else ".entry"
        kname = shape.key.serialization.get("name", "key")
        vname = shape.value.serialization.get("name", "value")
        out_map, i = {}, 1
        while f"{prefix}{step}.{i}.{kname}" in form:
            out_map[form[f"{prefix}{step}.{i}.{kname}"]] = _from_query(shape.value, form,
                                                                      f"{prefix}{step}.{i}.{vname}")
            i += 1
        return out_map
    return _scalar(shape, form.get(prefix, ""))


def _from_xml(shape: Shape, el: ET.Element) -> Any:
    t = shape.type_name
    if t == "structure":
        out = {}
        children = list(el)
        for n, m in shape.members.items():
            wire = m.serialization.get("name", n)
            if m.type_name == "list" and m.serialization.get("flattened"):
                found = [c for c in children if _tag(c) == wire]
                if found:
                    out[n] = [_from_xml(m.member, c) for c in found]
                continue
            child = next((c for c in children if _tag(c) == wire), None)
            if child is not None:
                out[n] = _from_xml(m, child)
        return out
    if t == "list":
        return [_from_xml(shape.member, c) for c in el]
    if t == "map":
        return {(_text(e, "key")): _from_xml(shape.value, _child(e, "value")) for e in el}
    return _scalar(shape, el.text or "")


def _tag(el: ET.Element) -> str:
    return el.tag.rpartition("}")[2]


def _child(el: ET.Element, name: str) -> ET.Element:
    return next(c for c in el if _tag(c) == name)


def _text(el: ET.Element, name: str) -> str:
    return _child(el, name).text or ""


# ---- responses of the local services ----------------------------------------------------------------------------

def response_errors(call: Call, status: int, headers: Mapping[str, str], body: bytes) -> list[str]:
    """Where a local service's answer departs from the model: an unmodelled error code or status, an output member
    missing, unknown, of the wrong type or outside its enum (JSON and REST-JSON answers)."""
    op = call.operation
    if status >= 300:
        return _error_errors(op, status, headers, body)
    errors: list[str] = []
    shape = op.output_shape
    if shape is None:
        return errors
    if call.protocol not in ("json", "rest-json"):
        return [f"{call.protocol} answers are not walked by the embedded AWS"]
    doc: dict[str, Any] = {}
    payload = shape.serialization.get("payload")
    lower = {k.lower(): v for k, v in headers.items()}
    for name, member in shape.members.items():
        loc = member.serialization.get("location")
        if loc == "header":
            wire = member.serialization.get("name", name).lower()
            if wire in lower:
                doc[name] = _scalar(member, lower[wire])
        elif loc == "statusCode":
            doc[name] = status
    if payload:
        member = shape.members[payload]
        if member.type_name not in ("blob", "string"):
            _walk(member, json.loads(body or b"{}"), payload, errors, call.protocol)
        located = {n: m for n, m in shape.members.items() if n != payload}
        _check_required(shape, {**doc, payload: True}, "", errors, only=located)
        return errors
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return [f"the answer is not JSON: {body[:80]!r}"]
    if not isinstance(parsed, dict):
        return [f"the answer is not a JSON object: {body[:80]!r}"]
    _walk(shape, {**parsed, **doc}, "", errors, call.protocol)
    return errors


def _error_errors(op: OperationModel, status: int, headers: Mapping[str, str], body: bytes) -> list[str]:
    lower = {k.lower(): v for k, v in headers.items()}
    code = lower.get("x-amzn-errortype", "").split(":")[0]
    if not code:
        try:
            code = str(json.loads(body or b"{}").get("__type", "")).rpartition("#")[2]
        except ValueError:
            code = ""
    modelled = {e.name: e.metadata.get("error", {}).get("httpStatusCode") for e in op.error_shapes}
    if code not in modelled and code not in COMMON_ERRORS:
        return [f"error {code or '(none)'} (HTTP {status}) is not an error of {op.name}: "
                f"{', '.join(sorted(modelled)) or 'none modelled'}"]
    expected = modelled.get(code)
    if expected is not None and expected != status:
        return [f"error {code} answered with HTTP {status}, the model says {expected}"]
    return []


_PY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "long": (int,), "boolean": (bool,),
                                          "float": (int, float), "double": (int, float), "blob": (str,)}


def _walk(shape: Shape, value: Any, path: str, errors: list[str], protocol: str) -> None:
    t = shape.type_name
    where = path or "(output)"
    if t == "structure":
        if getattr(shape, "is_document_type", False):
            return
        if not isinstance(value, dict):
            errors.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        by_wire = _by_wire(shape)
        for k, v in value.items():
            if k not in by_wire:
                errors.append(f"{where}: unknown member {k!r}")
                continue
            n, m = by_wire[k]
            if v is not None:
                _walk(m, v, f"{path}.{n}" if path else n, errors, protocol)
        _check_required(shape, {by_wire[k][0] if k in by_wire else k: v for k, v in value.items()}, path, errors)
        if getattr(shape, "is_tagged_union", False) and len(value) != 1:
            errors.append(f"{where}: a union holds exactly one member, not {len(value)}")
    elif t == "list":
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            _walk(shape.member, v, f"{where}[{i}]", errors, protocol)
    elif t == "map":
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            _walk(shape.value, v, f"{where}[{k}]", errors, protocol)
    elif t == "timestamp":
        _timestamp(shape, value, where, errors)
    else:
        _scalar_ok(shape, value, where, errors)


def _scalar_ok(shape: Shape, value: Any, where: str, errors: list[str]) -> None:
    types = _PY_TYPES.get(shape.type_name)
    if types is None:
        return
    if not isinstance(value, types) or (shape.type_name != "boolean" and isinstance(value, bool)):
        errors.append(f"{where}: expected {shape.type_name}, got {type(value).__name__} {value!r:.60}")
        return
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        errors.append(f"{where}: {value!r} is not one of {sorted(enum)}")


def _timestamp(shape: Shape, value: Any, where: str, errors: list[str]) -> None:
    fmt = shape.serialization.get("timestampFormat", "unixTimestamp")
    if fmt == "unixTimestamp":
        if not isinstance(value, int | float) or isinstance(value, bool):
            errors.append(f"{where}: expected epoch seconds, got {value!r:.60}")
    elif fmt == "iso8601":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            errors.append(f"{where}: expected an ISO 8601 time, got {value!r:.60}")


def _check_required(shape: Shape, present: Mapping[str, Any], path: str, errors: list[str],
                    only: Mapping[str, Shape] | None = None) -> None:
    for name in shape.required_members:
        if (only is None or name in only) and present.get(name) is None:
            errors.append(f"{path or '(output)'}: required member {name!r} missing")
