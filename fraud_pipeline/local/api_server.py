"""The REST API on 127.0.0.1, as API Gateway fronts it: route, API key, throttle, request validation, proxy event.

Routes (resource path templates such as `/transactions/{transaction_id}/label`),
stage, key requirement, each route's request model and the gateway responses
are the ones the program declared (`topology.ApiSpec`); a valid request
becomes the REST proxy event (with `resource`, `pathParameters`) the route's
function receives in AWS. The HTTP server is waitress (a production WSGI server:
a real listen backlog, keep-alive, chunked bodies, malformed requests answered).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

import jsonschema

# waitress ships no type hints, and the types-waitress stubs lack the server attributes used here
# (effective_host/port, trigger, channel_class): checked by tests/local/test_service.py instead.
from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.server import create_server  # type: ignore[import-untyped]
from waitress.task import ErrorTask  # type: ignore[import-untyped]

from .topology import ApiSpec, RouteSpec

#: API Gateway's own payload limit; the handler enforces its tighter 64 KiB itself.
GATEWAY_MAX_BODY = 10 * 1024 * 1024
#: Bodies up to this are read whole and refused with the gateway's 413 (a client still sending is not cut
#: off); only beyond it does the server itself answer 413 and close the connection.
WAITRESS_MAX_BODY = 8 * GATEWAY_MAX_BODY


class TokenBucket:
    def __init__(self, rate: float, burst: int):
        self.rate, self.capacity, self.tokens, self.updated = rate, burst, float(burst), time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def stable_api_key(spec: ApiSpec) -> str:
    """The emulation's API key: the same at every restart of the same stack (scripts keep working),
    different per stack. It guards nothing but this machine's emulation, so it need not be secret."""
    return "local-" + hashlib.sha256(f"fraud-pipeline-local:{spec.key_name}".encode()).hexdigest()[:32]


class LocalApi:
    """Routes each request to its route's function through the Lambda host, answering as API Gateway would.

    Everything API Gateway decides before the function runs is decided here, in its order: the
    stage, the resource and method, the API key, the usage plan's throttle, the payload limit
    and the request model (which needs a UTF-8 JSON body). Each refusal is the program's own
    gateway response (JSON, 4xx); only a function that fails answers 502, as AWS_PROXY does.
    """

    def __init__(self, spec: ApiSpec, invoke: Callable[[str, Any], Any], api_key: str | None = None,
                 openapi: Callable[[], dict] | None = None):
        self.spec = spec
        self.invoke = invoke
        self.api_key = api_key or stable_api_key(spec)
        self.api_key_id = "local" + hashlib.sha256(self.api_key.encode()).hexdigest()[:8]
        self.bucket = TokenBucket(spec.rate, spec.burst)
        self.validators = {id(r): jsonschema.Draft4Validator(r.schema) for r in spec.routes
                           if r.schema and r.validate_body}
        self.openapi = openapi

    def gateway_response(self, kind: str, message: str, default_status: int) -> tuple[int, dict, str]:
        status, template = self.spec.responses.get(kind) or self.spec.responses.get(
            "DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX", ("", ""))
        body = template.replace("$context.error.messageString", json.dumps(message)) if template else json.dumps({"message": message})
        return int(status or default_status), {"Content-Type": "application/json"}, body

    def resolve(self, method: str, path: str) -> tuple[RouteSpec | None, dict[str, str], str] | None:
        """(route or None, path parameters, path without the stage); None when the path names no stage.

        The execute-api URL always starts with the stage: `/transactions` alone asks for a stage
        named `transactions`, which API Gateway refuses as Forbidden. A path of the stage that
        no route has, or a method the route lacks, gives (None, {}, path).
        """
        stage = f"/{self.spec.stage}"
        if not (path == stage or path.startswith(stage + "/")):
            return None
        bare = path[len(stage):] or "/"
        for route in self.spec.routes:
            params = route.match(bare)
            if params is not None and route.method == method:
                return route, {k: unquote(v) for k, v in params.items()}, bare
        return None, {}, bare

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str) -> tuple[int, dict, str]:
        path, _, query = path.partition("?")
        if method in ("GET", "HEAD") and path == OPENAPI_PATH and self.openapi is not None:
            # The published contract (local only: the deployed API serves no document).
            return 200, {"Content-Type": "application/json"}, json.dumps(self.openapi(), indent=2)
        resolved = self.resolve(method, path)
        if resolved is None:
            # No stage in the path: no deployment's gateway responses apply, API Gateway's bare answer.
            return 403, {"Content-Type": "application/json"}, json.dumps({"message": "Forbidden"})
        route, params, bare = resolved
        if route is None:
            # API Gateway answers an unknown resource or method like a missing key.
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token", 403)
        lowered = {k.lower(): v for k, v in headers.items()}
        if route.api_key_required and lowered.get("x-api-key") != self.api_key:
            return self.gateway_response("INVALID_API_KEY", "Forbidden", 403)
        if not self.bucket.take():
            return self.gateway_response("THROTTLED", "Too Many Requests", 429)
        if len(body) > GATEWAY_MAX_BODY:
            return self.gateway_response("REQUEST_TOO_LARGE", "Request Too Long", 413)
        validator = self.validators.get(id(route))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            if validator is not None:
                return self.gateway_response("BAD_REQUEST_BODY", "Invalid request body", 400)
            text = body.decode("utf-8", errors="replace")
        if validator is not None:
            try:
                validator.validate(json.loads(text))
            except (ValueError, RecursionError, jsonschema.ValidationError):
                # Not JSON, nested too deep to parse, or not the model: API Gateway's request validation.
                return self.gateway_response("BAD_REQUEST_BODY", "Invalid request body", 400)
        queries = parse_qs(query, keep_blank_values=True) if query else {}
        event = {
            "resource": route.path, "path": bare, "httpMethod": method,
            "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in queries.items()} or None,
            "multiValueQueryStringParameters": queries or None,
            "pathParameters": params or None, "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path, "httpMethod": method, "stage": self.spec.stage,
                "path": f"/{self.spec.stage}{bare}",
                "requestId": str(uuid.uuid4()), "requestTimeEpoch": int(time.time() * 1000),
                "identity": {"sourceIp": source_ip, "apiKey": lowered.get("x-api-key"), "apiKeyId": self.api_key_id},
            },
            "body": text, "isBase64Encoded": False,
        }
        try:
            result = self.invoke(route.function, event)
        except Exception:
            # A function error behind AWS_PROXY: API Gateway's 502, in the program's DEFAULT_5XX shape.
            status, headers, text = self.gateway_response("DEFAULT_5XX", "Internal server error", 502)
            return 502, headers, text
        return int(result.get("statusCode", 200)), dict(result.get("headers") or {}), result.get("body") or ""

    # -- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        headers = {_header_name(k): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
            if environ.get(key):
                headers[name] = environ[key]
        length = int(environ.get("CONTENT_LENGTH") or 0)  # the server has checked it is a number
        body = environ["wsgi.input"].read(length) if length else b""
        target = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        status, out_headers, text = self.handle(method, target, headers, body, environ.get("REMOTE_ADDR", ""))
        payload = text.encode()
        out = [(k, str(v)) for k, v in out_headers.items() if k.lower() != "content-length"]
        out.append(("Content-Length", str(len(payload))))
        start_response(_status_line(status), out)
        return [] if method == "HEAD" else [payload]


OPENAPI_PATH = "/openapi.json"


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Status"


def _header_name(environ_key: str) -> str:
    return "-".join(part.capitalize() for part in environ_key[5:].split("_"))


class JsonErrorTask(ErrorTask):
    """Waitress's answer to a request it cannot parse (bad Content-Length, bad chunking, headers too
    large, body over the limit), as JSON like every other answer here, instead of a text page."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"message": error.reason}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


class LocalHttp:
    """The waitress server the API runs on, in a daemon thread."""

    #: Listen backlog and worker threads: every connection of a burst is accepted and queued, none reset.
    BACKLOG = 1024
    THREADS = 16

    def __init__(self, app: LocalApi, host: str = "127.0.0.1", port: int = 0):
        # Raises OSError (EADDRINUSE) in the caller's thread when the port is taken.
        self._map: dict = {}
        self._server = create_server(
            app, map=self._map, host=host, port=port, threads=self.THREADS, backlog=self.BACKLOG, connection_limit=512,
            channel_timeout=60, max_request_body_size=WAITRESS_MAX_BODY, ident="", clear_untrusted_proxy_headers=True,
        )
        self._server.channel_class = JsonErrorChannel
        self.server_address = (str(self._server.effective_host), int(self._server.effective_port))
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="local-api")
        self._thread.start()

    def shutdown(self) -> None:
        """Close every socket from the server's own loop (its trigger), so the loop ends instead of
        selecting on descriptors another thread closed under it."""

        def close_all() -> None:
            self._server.task_dispatcher.shutdown(timeout=2)
            wasyncore.close_all(self._map)

        self._server.trigger.pull_trigger(close_all)
        self._thread.join(timeout=5)


def serve(api: LocalApi, host: str = "127.0.0.1", port: int = 0) -> LocalHttp:
    """Start the HTTP server in a daemon thread; `server.server_address` has the port."""
    return LocalHttp(api, host, port)
