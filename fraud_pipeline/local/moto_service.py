"""moto's server on 127.0.0.1, one request at a time, failing fast on a used port.

moto's backends are process-wide and not built for concurrent callers: under `serve`,
the pump's pollers, the functions the API invokes and a user's AWS CLI all call it at
once. Its WSGI app is therefore wrapped in a lock (moto answers in milliseconds, and no
caller here long-polls: every ReceiveMessage uses WaitTimeSeconds=0). moto's own
`ThreadedMotoServer` binds in a thread and waits for an event that a failed bind never
sets, so a used port hung the process; this one binds in the caller's thread and raises.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class MotoService:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def serialised(environ: dict, start_response: Any) -> Iterable[bytes]:
            with lock:
                # The whole response is produced under the lock: moto builds it from its backends.
                return list(app(environ, start_response))

        # Raises OSError (EADDRINUSE) here, in the caller's thread, when the port is taken.
        self._server = make_server(host, port, serialised, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="moto")

    def start(self) -> None:
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
