"""The REST API on 127.0.0.1, as API Gateway fronts it: route, API key, throttle, request validation, proxy event.

Route, stage, key requirement, the request model and the gateway responses
are the ones the program declared (`topology.ApiSpec`); a valid request
becomes the REST proxy event the API handler receives in AWS.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import jsonschema

from .topology import ApiSpec

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
    """Routes requests to the API function through the Lambda host."""

    def __init__(self, spec: ApiSpec, invoke: Callable[[Any], Any], api_key: str | None = None):
        self.spec = spec
        self.invoke = invoke
        self.api_key = api_key or secrets.token_urlsafe(30)
        self.api_key_id = "local" + secrets.token_hex(4)
        self.bucket = TokenBucket(spec.rate, spec.burst)
        self.validator = jsonschema.Draft4Validator(spec.schema) if spec.schema and spec.validate_body else None
        self.routes = {f"/{spec.stage}{spec.path}", spec.path}

    def gateway_response(self, kind: str, message: str, default_status: int) -> tuple[int, dict, str]:
        status, template = self.spec.responses.get(kind) or self.spec.responses.get(
            "DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX", ("", ""))
        body = template.replace("$context.error.messageString", json.dumps(message)) if template else json.dumps({"message": message})
        return int(status or default_status), {"Content-Type": "application/json"}, body

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str) -> tuple[int, dict, str]:
        path = path.split("?", 1)[0]
        if path not in self.routes or method != self.spec.method:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token", 403)
        lowered = {k.lower(): v for k, v in headers.items()}
        if self.spec.api_key_required and lowered.get("x-api-key") != self.api_key:
            return self.gateway_response("INVALID_API_KEY", "Forbidden", 403)
        if not self.bucket.take():
            return self.gateway_response("THROTTLED", "Too Many Requests", 429)
        if len(body) > GATEWAY_MAX_BODY:
            return self.gateway_response("REQUEST_TOO_LARGE", "Request Too Long", 413)
        text = body.decode("utf-8", errors="replace")
        if self.validator is not None:
            try:
                document = json.loads(text)
                self.validator.validate(document)
            except (ValueError, jsonschema.ValidationError):
                return self.gateway_response("BAD_REQUEST_BODY", "Invalid request body", 400)
        event = {
            "resource": self.spec.path, "path": self.spec.path, "httpMethod": method,
            "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": None, "pathParameters": None, "stageVariables": None,
            "requestContext": {
                "resourcePath": self.spec.path, "httpMethod": method, "stage": self.spec.stage,
                "requestId": str(uuid.uuid4()), "requestTimeEpoch": int(time.time() * 1000),
                "identity": {"sourceIp": source_ip, "apiKey": lowered.get("x-api-key"), "apiKeyId": self.api_key_id},
            },
            "body": text, "isBase64Encoded": False,
        }
        try:
            result = self.invoke(event)
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
