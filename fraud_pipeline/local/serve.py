"""`python -m fraud_pipeline.local serve`: the emulated pipeline kept up for a person, a script or a CI job.

What a caller can rely on:

* a used port is an error naming it, before anything is evaluated, with exit status 2;
* once ready, `--info-file FILE` holds the endpoints and physical names as JSON (written
  atomically, removed on exit), so a script waits for the file instead of parsing the banner;
* the API key is the same at every restart of the same stack (`api_server.stable_api_key`);
* every AWS CLI line the banner prints runs as printed with AWS CLI v1 and v2: endpoint,
  region and credentials are on the line, and record data is passed as a file (`fileb://`),
  which both versions read as raw bytes;
* each published alert is one line block of the live output, never swallowed by a
  function's log capture (`LiveOutput`, `host.ThreadRoutedStdout`);
* SIGTERM or Ctrl-C stops it within seconds; a restart starts from nothing (moto keeps its
  state in memory), except the API key.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, TextIO

from .emulator import Alert, Emulator

#: Exit status for a port that is already taken (argparse's usage errors are 2 as well).
PORT_IN_USE = 2


class LiveOutput:
    """The terminal stream as it was when serve started, written whole-block under a lock."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            self.stream.flush()

    def alert(self, alert: Alert) -> None:
        stage = alert.attributes.get("stage", "detection")
        self.write(f"\n[{alert.topic}] {alert.subject}  ({stage}; decision={alert.attributes.get('decision')}, "
                   f"severity={alert.attributes.get('severity')})\n{alert.message}\n")


def port_problem(port: int, flag: str, variable: str) -> str | None:
    """Why `port` cannot be served on 127.0.0.1, or None (0 = any free port)."""
    if port == 0:
        return None
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as exc:
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
        return (f"port {port} ({flag}) {reason}: stop what listens there (`ss -ltnp 'sport = :{port}'` shows it) "
                f"or choose another, e.g. `make run {variable}={port + 1}`")
    finally:
        probe.close()
    return None


def service_info(em: Emulator) -> dict[str, Any]:
    """What a script needs to drive the emulation: endpoints, key and every physical name."""
    topo = em.topo
    api_fn, label_fn = em.function("api").name, em.function("label").name
    transactions_url = em.url(api_fn)
    table = next(t.name for t in topo.tables if t.stream_view_type)
    topics = {t["name"]: t["arn"] for t in topo.topics}
    host, port = em._http.server_address[:2] if em._http else ("127.0.0.1", 0)
    return {
        "stack": topo.stack,
        "region": topo.region,
        "api_url": f"http://{host}:{port}/{topo.api.stage}" if topo.api else None,
        "transactions_url": transactions_url,
        "label_url_template": em.url(label_fn, transaction_id="{transaction_id}"),
        "openapi_url": f"http://{host}:{port}/openapi.json",
        "api_key": em.api.api_key if em.api else None,
        "aws_endpoint": em.endpoint,
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
        "alert_topic_arn": next(arn for name, arn in topics.items() if name.startswith("fraud-alerts-")),
        "ops_topic_arn": next((arn for name, arn in topics.items() if name.startswith("fraud-ops-")), None),
        "table_name": table,
        "features_table_name": next((t.name for t in topo.tables if t.name != table), None),
        "stream_name": topo.streams[0]["name"],
        "archive_bucket": em.archive_bucket,
        "queue_urls": {q.name: em.resources.queue_urls[q.arn] for q in topo.queues},
        "event_bus_name": topo.buses[0] if topo.buses else None,
        "state_machine_arns": sorted(topo.state_machines),
        "function_names": {f.key: f.name for f in topo.functions.values()},
    }


def write_info(path: Path, info: dict[str, Any]) -> None:
    """Write atomically: a reader polling for the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(info, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def cli_lines(info: dict[str, Any]) -> list[str]:
    """The banner's shell lines, each complete for AWS CLI v1 and v2 (no reliance on environment or profile)."""
    aws = (f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local "
           f"aws --endpoint-url {info['aws_endpoint']} --region {info['region']}")
    record = json.dumps({"transaction_id": "test-123", "amount": 5500, "hour": 23, "location_mismatch": True})
    return [
        f"printf '%s' '{record}' > record.json",
        f"{aws} kinesis put-record --stream-name {info['stream_name']} --partition-key p1 --data fileb://record.json",
        "printf 'transaction_id,label,source,labelled_at\\ntest-123,fraud,chargeback,\\n' > chargebacks.csv",
        f"{aws} s3 cp chargebacks.csv s3://{info['archive_bucket']}/labels/chargebacks.csv",
        f"{aws} dynamodb scan --table-name {info['table_name']}",
    ]


def banner(info: dict[str, Any]) -> str:
    example = json.dumps({"transaction_id": "readme-1", "amount": 15000.00, "merchant": "Unknown Store",
                          "card_number": "1234567890123456", "location": "Nigeria"})
    label_url = info["label_url_template"].replace("{transaction_id}", "readme-1")
    key = info["api_key"]
    lines = "\n  ".join(cli_lines(info))
    return f"""
fraud-pipeline is up (stack {info['stack']}, region {info['region']}).

  REST API      POST {info['transactions_url']}
                POST {info['label_url_template']}
  OpenAPI       {info['openapi_url']}
  API key       {key}   (the same at every restart of this stack)
  AWS endpoint  {info['aws_endpoint']}   (any access key; region {info['region']})
  Label files   s3://{info['archive_bucket']}/labels/   (label-ingest runs on each upload; refused rows in rejected/labels/)

Try it:
  curl -s -X POST {info['transactions_url']} -H 'x-api-key: {key}' -H 'Content-Type: application/json' \\
       -d '{example}'

  curl -s -X POST {label_url} -H 'x-api-key: {key}' \\
       -H 'Content-Type: application/json' -d '{{"label": "fraud", "source": "analyst", "note": "confirmed"}}'

  {lines}

Nothing is kept: a restart starts from empty tables, stream and bucket (the API key stays).
Alerts are printed below as they are published. Ctrl-C or SIGTERM stops."""


def run(stack: str, port: int, aws_port: int, info_file: str | None = None) -> int:
    live = LiveOutput(sys.stdout)
    for problem in (port_problem(port, "--port", "PORT"), port_problem(aws_port, "--aws-port", "AWS_PORT")):
        if problem:
            print(f"error: {problem}", file=sys.stderr, flush=True)
            return PORT_IN_USE
    live.write(f"Evaluating the program for stack '{stack}' and materialising it on moto ...")
    info_path = Path(info_file) if info_file else None
    try:
        em = Emulator(stack, aws_port=aws_port, on_alert=live.alert)
    except OSError as exc:  # the port was taken between the check and the bind
        print(f"error: cannot serve the AWS endpoint on port {aws_port}: {exc.strerror}", file=sys.stderr, flush=True)
        return PORT_IN_USE
    # Until here SIGTERM's default action ends the process at once (nothing to clean up yet).
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        try:
            em.start_api(port=port)
        except OSError as exc:
            print(f"error: cannot serve the API on port {port}: {exc.strerror}", file=sys.stderr, flush=True)
            return PORT_IN_USE
        em.start()
        info = service_info(em)
        live.write(banner(info))
        if info_path:
            write_info(info_path, info)
        stop.wait()
        live.write("\nStopping ...")
        return 0
    finally:
        if info_path:
            info_path.unlink(missing_ok=True)
        em.close()
