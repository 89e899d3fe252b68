"""The REST API on 127.0.0.1, as API Gateway fronts it: route, API key, throttle, request validation, proxy event.

Routes (resource path templates such as `/transactions/{transaction_id}/label`),
stage, key requirement, each route's request model and the gateway responses
are the ones the program declared (`topology.ApiSpec`); a valid request
becomes the REST proxy event (with `resource`, `pathParameters`) the route's
function receives in AWS.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs

import jsonschema

from .topology import ApiSpec, RouteSpec

#: API Gateway's own payload limit; the handler enforces its tighter 64 KiB itself.
GATEWAY_MAX_BODY = 10 * 1024 * 1024


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


class LocalApi:
    """Routes each request to its route's function through the Lambda host."""

    def __init__(self, spec: ApiSpec, invoke: Callable[[str, Any], Any], api_key: str | None = None):
        self.spec = spec
        self.invoke = invoke
        self.api_key = api_key or secrets.token_urlsafe(30)
        self.api_key_id = "local" + secrets.token_hex(4)
        self.bucket = TokenBucket(spec.rate, spec.burst)
        self.validators = {id(r): jsonschema.Draft4Validator(r.schema) for r in spec.routes
                           if r.schema and r.validate_body}

    def gateway_response(self, kind: str, message: str, default_status: int) -> tuple[int, dict, str]:
        status, template = self.spec.responses.get(kind) or self.spec.responses.get(
            "DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX", ("", ""))
        body = template.replace("$context.error.messageString", json.dumps(message)) if template else json.dumps({"message": message})
        return int(status or default_status), {"Content-Type": "application/json"}, body

    def resolve(self, method: str, path: str) -> tuple[RouteSpec, dict[str, str], str] | None:
        """(route, path parameters, path without the stage) of a request, None when no route has it.

        The stage prefix is optional, as on a custom domain mapped to the stage.
        """
        stage = f"/{self.spec.stage}"
        bare = path[len(stage):] if path == stage or path.startswith(stage + "/") else path
        for route in self.spec.routes:
            params = route.match(bare)
            if params is not None and route.method == method:
                return route, params, bare or "/"
        return None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str) -> tuple[int, dict, str]:
        path, _, query = path.partition("?")
        resolved = self.resolve(method, path)
        if resolved is None:
            # API Gateway answers an unknown resource or method like a missing key.
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token", 403)
        route, params, bare = resolved
        lowered = {k.lower(): v for k, v in headers.items()}
        if route.api_key_required and lowered.get("x-api-key") != self.api_key:
            return self.gateway_response("INVALID_API_KEY", "Forbidden", 403)
        if not self.bucket.take():
            return self.gateway_response("THROTTLED", "Too Many Requests", 429)
        if len(body) > GATEWAY_MAX_BODY:
            return self.gateway_response("REQUEST_TOO_LARGE", "Request Too Long", 413)
        text = body.decode("utf-8", errors="replace")
        validator = self.validators.get(id(route))
        if validator is not None:
            try:
                document = json.loads(text)
                validator.validate(document)
            except (ValueError, jsonschema.ValidationError):
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
            return 502, {"Content-Type": "application/json"}, json.dumps({"message": "Internal server error"})
        return int(result.get("statusCode", 200)), dict(result.get("headers") or {}), result.get("body") or ""


def serve(api: LocalApi, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start the HTTP server in a daemon thread; `server.server_address` has the port."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, text = api.handle(self.command, self.path, dict(self.headers), body, self.client_address[0])
            payload = text.encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = do_GET = do_PUT = do_DELETE = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="local-api").start()
    return server
