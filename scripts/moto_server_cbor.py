#!/bin/sh
"""true"
# Shell preamble: re-exec this file with the project's test venv (or
# $BUCKETLOG_MOTO_PYTHON), so it can stand in for .venv/bin/moto_server.
py="${BUCKETLOG_MOTO_PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$py" ] || py=python3
exec "$py" "$0" "$@"
"""

# moto_server with a Smithy RPC v2 CBOR front end.
#
# Drop-in replacement for `moto_server` (same -H/-p/-r/-s/-c/-k flags,
# defaults to 127.0.0.1:5000 or $MOTO_PORT). It builds moto's WSGI application
# in-process, exactly as moto.server.main() does, and wraps it in
# `CborToJsonMiddleware`:
#
#   * Requests with `smithy-protocol: rpc-v2-cbor` (or content-type
#     application/cbor) on `/service/<Service>/operation/<Operation>` are
#     decoded (gunzipped first when `Content-Encoding: gzip`), converted to the
#     AWS JSON 1.0 protocol (`X-Amz-Target: <Service>.<Operation>`,
#     application/x-amz-json-1.0, path `/`), handed to moto, and moto's JSON
#     answer is converted back to CBOR (`smithy-protocol: rpc-v2-cbor`, same
#     status). Errors come back as CBOR `{"__type": ..., "message": ...}` and
#     moto's `x-amzn-query-error` header is kept, which is what the Rust SDK
#     (awsQueryCompatible services such as CloudWatch) keys error codes on.
#   * Values are converted shape by shape using botocore's service model
#     (botocore ships with moto): timestamps are CBOR tag 1 epoch seconds <->
#     JSON epoch-seconds numbers, blobs are CBOR byte strings <-> base64,
#     doubles are always sent as CBOR floats and integers as CBOR ints (the SDK's
#     CBOR decoder rejects an int where it expects a double and vice versa).
#   * DynamoDB requests are handled one at a time (`SerialDynamoDbMiddleware`),
#     because moto's transactions are not atomic under concurrency, and a
#     transaction backs up only its own items (`patch_dynamodb_transactions`),
#     not a deep copy of the whole table.
#   * Python's recursion limit and the threads' stacks are raised: moto parses an
#     update expression into a right-nested tree and deep-copies it, so an
#     `UpdateItem` adding 200 counters (bucketlog's count pages) recursed past the
#     default limit of 1,000 and answered HTTP 500. DynamoDB takes such an
#     expression (it is under its 4 KB limit).
#   * Everything else (S3, SNS, SQS, /moto-api/...) goes to moto untouched.
#
# Why: aws-sdk-cloudwatch >= 1.100 only speaks RPC v2 CBOR, which moto 5.2.5
# does not route (404); moto does implement CloudWatch's JSON 1.0 protocol.

import argparse
import base64
import datetime as dt
import gzip
import io
import json
import math
import os
import re
import signal
import sys
import threading
import traceback
import zlib
from typing import Any, Callable, Iterable

import cbor2
from werkzeug.serving import run_simple
from werkzeug.wsgi import get_input_stream

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

CBOR_CONTENT_TYPE = "application/cbor"
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
PATH_RE = re.compile(r"/service/([^/]+)/operation/([^/?]+)$")

# Smithy service name (the path segment, which is also the JSON protocol's
# target prefix) -> botocore service name. Add entries to translate more
# services; unknown services are still translated, just without a model.
SERVICES = {
    "GraniteServiceVersion20100801": "cloudwatch",
}

# Response headers from moto worth keeping on a translated response.
KEEP_RESPONSE_HEADERS = {
    "x-amzn-requestid",
    "x-amz-request-id",
    "x-amzn-query-error",
    "date",
    "access-control-allow-origin",
}


# MOTO_CBOR_DEBUG=1 logs one line per translated request (size, Content-Encoding).
DEBUG = os.environ.get("MOTO_CBOR_DEBUG", "") not in ("", "0")


def log(msg: str) -> None:
    print(f"[moto_server_cbor] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Service models
# --------------------------------------------------------------------------

_models: dict[str, Any] = {}


def service_model(smithy_service: str) -> Any:
    """botocore ServiceModel for a Smithy service name, or None if unknown."""
    name = SERVICES.get(smithy_service)
    if name is None:
        return None
    if name not in _models:
        import botocore.session

        _models[name] = botocore.session.get_session().get_service_model(name)
    return _models[name]


def operation_model(smithy_service: str, operation: str) -> Any:
    model = service_model(smithy_service)
    if model is None:
        return None
    try:
        return model.operation_model(operation)
    except Exception:  # botocore.exceptions.OperationNotFoundError
        return None


# --------------------------------------------------------------------------
# Value conversion
# --------------------------------------------------------------------------


def _epoch(value: dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def _parse_timestamp(value: Any) -> float:
    """Epoch seconds from whatever a JSON response may carry."""
    if isinstance(value, bool):
        raise ValueError(f"bad timestamp {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            return _epoch(dt.datetime.fromisoformat(text))
        except ValueError:
            from botocore.utils import parse_timestamp

            return _epoch(parse_timestamp(value))
    raise ValueError(f"bad timestamp {value!r}")


def cbor_to_json(value: Any, shape: Any = None) -> Any:
    """Decoded CBOR request value -> JSON-protocol value."""
    type_name = getattr(shape, "type_name", None)
    if isinstance(value, cbor2.CBORTag):
        # cbor2 turns tag 1/0 into datetimes itself; be lenient with the rest.
        if value.tag == 1 and isinstance(value.value, (int, float)):
            return float(value.value)
        return cbor_to_json(value.value, shape)
    if isinstance(value, dt.datetime):
        return _epoch(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            if type_name == "structure":
                member = shape.members.get(key)
            elif type_name == "map":
                member = shape.value
            else:
                member = None
            out[str(key)] = cbor_to_json(item, member)
        return out
    if isinstance(value, (list, tuple)):
        member = shape.member if type_name == "list" else None
        return [cbor_to_json(item, member) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        # The JSON protocol spells these as strings.
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _to_float(value: Any) -> float:
    if isinstance(value, str):
        return float({"Infinity": "inf", "-Infinity": "-inf"}.get(value, value))
    return float(value)


def json_to_cbor(value: Any, shape: Any = None) -> Any:
    """JSON-protocol response value -> value for cbor2.dumps."""
    if value is None:
        return None
    type_name = getattr(shape, "type_name", None)
    if type_name == "timestamp":
        return cbor2.CBORTag(1, _parse_timestamp(value))
    if type_name in ("double", "float"):
        return _to_float(value)
    if type_name in ("integer", "long", "short", "byte"):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value)
        return value
    if type_name == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    if type_name == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            if type_name == "structure":
                member = shape.members.get(key)
            elif type_name == "map":
                member = shape.value
            else:
                member = None
            out[key] = json_to_cbor(item, member)
        return out
    if isinstance(value, list):
        member = shape.member if type_name == "list" else None
        return [json_to_cbor(item, member) for item in value]
    return value


# --------------------------------------------------------------------------
# WSGI middleware
# --------------------------------------------------------------------------


class CborError(Exception):
    def __init__(self, status: int, type_: str, message: str):
        super().__init__(message)
        self.status = status
        self.type_ = type_
        self.message = message


def _decode_content(body: bytes, encodings: str) -> bytes:
    # Content-Encoding lists codings in the order they were applied.
    for coding in reversed([c.strip().lower() for c in encodings.split(",") if c.strip()]):
        if coding in ("identity", ""):
            continue
        if coding in ("gzip", "x-gzip"):
            body = gzip.decompress(body)
        elif coding == "deflate":
            body = zlib.decompress(body)
        else:
            raise CborError(415, "UnsupportedMediaType", f"unsupported Content-Encoding {coding!r}")
    return body


class CborToJsonMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    @staticmethod
    def match(environ: dict[str, Any]) -> re.Match[str] | None:
        protocol = environ.get("HTTP_SMITHY_PROTOCOL", "").strip().lower()
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if protocol != "rpc-v2-cbor" and content_type != CBOR_CONTENT_TYPE:
            return None
        return PATH_RE.search(environ.get("PATH_INFO", ""))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = self.match(environ)
        if match is None:
            return self.app(environ, start_response)
        service, operation = match.group(1), match.group(2)
        try:
            status, headers, body = self.translate(environ, service, operation)
        except CborError as e:
            status, headers, body = self.error(e.status, e.type_, e.message)
        except Exception as e:  # noqa: BLE001 - report, never hang the client
            log(f"{service}.{operation}: translation failed:\n{traceback.format_exc()}")
            status, headers, body = self.error(500, "InternalFailure", f"moto_server_cbor: {e!r}")
        start_response(status, headers)
        return [body]

    @staticmethod
    def respond(status: int, payload: Any, extra: list[tuple[str, str]] | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        from http import HTTPStatus

        body = cbor2.dumps(payload)
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        headers = list(extra or [])
        headers += [
            ("Content-Type", CBOR_CONTENT_TYPE),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("Content-Length", str(len(body))),
        ]
        return f"{status} {reason}", headers, body

    def error(self, status: int, type_: str, message: str, extra: list[tuple[str, str]] | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        return self.respond(status, {"__type": type_, "message": message}, extra)

    def translate(self, environ: dict[str, Any], service: str, operation: str) -> tuple[str, list[tuple[str, str]], bytes]:
        if environ.get("REQUEST_METHOD", "POST").upper() != "POST":
            raise CborError(405, "MethodNotAllowed", "RPC v2 CBOR requests must be POST")

        raw = get_input_stream(environ).read()
        raw = _decode_content(raw, environ.get("HTTP_CONTENT_ENCODING", ""))
        try:
            request = cbor2.loads(raw) if raw else {}
        except Exception as e:
            raise CborError(400, "SerializationException", f"cannot decode CBOR body: {e}") from e
        if request is None:
            request = {}
        if not isinstance(request, dict):
            raise CborError(400, "SerializationException", "CBOR body must be a map")

        op_model = operation_model(service, operation)
        if op_model is None and service_model(service) is not None:
            raise CborError(404, "UnknownOperationException", f"unknown operation {service}.{operation}")
        json_body = cbor_to_json(request, getattr(op_model, "input_shape", None))
        if DEBUG:
            log(
                f"{service}.{operation}: {environ.get('CONTENT_LENGTH') or '?'} bytes on the wire, "
                f"Content-Encoding={environ.get('HTTP_CONTENT_ENCODING') or 'none'}, {len(raw)} bytes of CBOR"
            )
        payload = json.dumps(json_body).encode("utf-8")

        inner = dict(environ)
        for key in (
            "HTTP_CONTENT_ENCODING",
            "HTTP_SMITHY_PROTOCOL",
            "HTTP_TRANSFER_ENCODING",
            "HTTP_X_AMZN_QUERY_MODE",
            "HTTP_CONTENT_MD5",
        ):
            inner.pop(key, None)
        inner.update(
            {
                "PATH_INFO": "/",
                "RAW_URI": "/",
                "REQUEST_URI": "/",
                "QUERY_STRING": "",
                "CONTENT_TYPE": JSON_CONTENT_TYPE,
                "CONTENT_LENGTH": str(len(payload)),
                "HTTP_ACCEPT": "application/json",
                "HTTP_X_AMZ_TARGET": f"{service}.{operation}",
                "wsgi.input": io.BytesIO(payload),
                "wsgi.input_terminated": True,
            }
        )
        if not inner.get("HTTP_AUTHORIZATION"):
            # moto routes on the SigV4 credential scope; fake one when unsigned.
            model = service_model(service)
            signing = "monitoring"
            if model is not None:
                signing = model.metadata.get("signingName") or model.metadata.get("endpointPrefix") or signing
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            inner["HTTP_AUTHORIZATION"] = (
                f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200101/{region}/{signing}/aws4_request, "
                "SignedHeaders=host, Signature=0"
            )

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"] = status
            captured["headers"] = headers
            chunks = captured.setdefault("chunks", [])
            return chunks.append

        result = self.app(inner, capture)
        try:
            chunks = captured.setdefault("chunks", [])
            for chunk in result:
                chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status = int(str(captured.get("status", "500")).split()[0])
        moto_headers = captured.get("headers", [])
        text = b"".join(captured.get("chunks", []))
        keep = [(k, v) for k, v in moto_headers if k.lower() in KEEP_RESPONSE_HEADERS]

        try:
            answer = json.loads(text) if text.strip() else {}
        except ValueError:
            answer = None

        if 200 <= status < 300:
            if not isinstance(answer, dict):
                raise CborError(500, "InternalFailure", f"moto returned non-JSON for {operation}: {text[:300]!r}")
            return self.respond(status, json_to_cbor(answer, getattr(op_model, "output_shape", None)) or {}, keep)

        if isinstance(answer, dict) and answer.get("__type"):
            error = {k: json_to_cbor(v) for k, v in answer.items() if k not in ("Message",) and v is not None}
            message = answer.get("message") or answer.get("Message")
            if message is not None:
                error["message"] = message
            return self.respond(status, error, keep)
        snippet = text.decode("utf-8", "replace")[:500]
        if status == 404:
            type_ = "UnknownOperationException"
        elif status >= 500:
            type_ = "InternalFailure"
        else:
            type_ = "ValidationException"
        log(f"{service}.{operation}: moto answered {status} without a JSON error: {snippet!r}")
        return self.error(status, type_, f"moto: {operation} failed with HTTP {status}: {snippet}", keep)


def patch_dynamodb_transactions() -> None:
    """Makes moto's `TransactWriteItems` back up only the items it touches.

    moto deep-copies every table a transaction names, so each transaction costs time
    and memory in proportion to the whole table (seconds and gigabytes once a test has
    written tens of thousands of counters). With DynamoDB requests serialised
    (`SerialDynamoDbMiddleware`), backing up just the transaction's own items (at most
    100) and putting them back on failure is the same all-or-nothing rollback.
    """
    import copy as real_copy
    import types

    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    def deepcopy_except_tables(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else real_copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy_except_tables, copy=real_copy.copy)  # type: ignore[assignment]
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups = []
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            if op_type == "Put":
                names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
                keys = {n: op["Item"][n] for n in names if n in op["Item"]}
            else:
                keys = op.get("Key", {})
            try:
                hash_key, range_key = self.get_keys_value(table, keys)
            except Exception:  # noqa: BLE001 - moto itself reports the bad key
                continue
            saved = table.get_item(hash_key, range_key)
            backups.append((table, hash_key, range_key, real_copy.deepcopy(saved)))
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, saved in reversed(backups):
                if range_key is not None:
                    if saved is None:
                        table.items[hash_key].pop(range_key, None)
                    else:
                        table.items[hash_key][range_key] = saved
                elif saved is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = saved
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class SerialDynamoDbMiddleware:
    """Handles DynamoDB requests one at a time, as real DynamoDB's transactions behave.

    moto's `TransactWriteItems` deep-copies the table for its rollback and applies
    the items one by one, so two concurrent transactions can lose each other's
    writes or fail with "dictionary changed size during iteration". Real DynamoDB
    applies each transaction atomically and serialises transactions on the same
    items. One lock over every DynamoDB request (JSON 1.0, `X-Amz-Target:
    DynamoDB_20120810.*`) gives the tests that model; other services stay
    concurrent.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


# --------------------------------------------------------------------------
# Server (mirrors moto.server.main)
# --------------------------------------------------------------------------


def signal_handler(signum: Any, frame: Any) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto_server with a Smithy RPC v2 CBOR -> JSON 1.0 front end")
    parser.add_argument("-H", "--host", type=str, help="Which host to bind", default="127.0.0.1")
    parser.add_argument(
        "-p",
        "--port",
        type=int,
        help="Port number to use for connection",
        default=int(os.environ.get("MOTO_PORT", 5000)),
    )
    parser.add_argument("-r", "--reload", action="store_true", help="Reload server on a file change", default=False)
    parser.add_argument("-s", "--ssl", action="store_true", help="Enable SSL with an auto-generated certificate", default=False)
    parser.add_argument("-c", "--ssl-cert", type=str, help="Path to SSL certificate", default=None)
    parser.add_argument("-k", "--ssl-key", type=str, help="Path to SSL private key", default=None)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    if "MOTO_PORT" not in os.environ:
        os.environ["MOTO_PORT"] = f"{args.port}"

    try:
        signal.signal(signal.SIGINT, signal_handler)
        signal.signal(signal.SIGTERM, signal_handler)
    except Exception:
        pass

    # Deep recursion in moto's expression parser (see the header): the limit is per
    # thread, and each request thread needs the stack for it.
    sys.setrecursionlimit(20_000)
    threading.stack_size(256 * 1024 * 1024)
    patch_dynamodb_transactions()
    moto_app = DomainDispatcherApplication(create_backend_app)
    moto_app.debug = True  # type: ignore[attr-defined]
    app = SerialDynamoDbMiddleware(CborToJsonMiddleware(moto_app))

    ssl_context: Any = None
    if args.ssl_key and args.ssl_cert:
        ssl_context = (args.ssl_cert, args.ssl_key)
    elif args.ssl:
        ssl_context = "adhoc"

    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        use_reloader=args.reload,
        ssl_context=ssl_context,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
