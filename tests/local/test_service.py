"""`serve` as a user, a script and a CI job meet it: a subprocess driven over HTTP and the AWS CLI.

One `serve` process for the module (started with `--info-file`, as a script would), then:
concurrent clients lose no alert line and get no 5xx, a burst of simultaneous connections
is all answered, the API's edges answer JSON 4xx as API Gateway would, the banner's AWS CLI
lines run as printed, a used port is a clear error, SIGTERM stops it within seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fraud_pipeline.local.process import ServeProcess

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = ServeProcess(tmp_path_factory.mktemp("serve"))
    yield s
    if s.process.poll() is None:
        s.stop()


def post(url: str, body, key: str | None, headers: dict | None = None, method: str = "POST", timeout: float = 60):
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={**({"x-api-key": key} if key else {}), "Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def flagged(i: int) -> dict:
    """Blocked merchant in a high-risk country, a small amount (no review workflow): one alert each."""
    return {"transaction_id": f"load-{i}", "amount": 120.0 + i, "merchant": "Unknown Store",
            "card_number": "4111 1111 1111 1111", "location": "Nigeria"}


def ordinary(i: int) -> dict:
    return {"transaction_id": f"plain-{i}", "amount": 12.5, "merchant": "Corner Cafe",
            "card_number": "5500 0000 0000 0004", "location": "Austin, USA", "hour": 12}


# --- concurrency ------------------------------------------------------------------------

def test_32_concurrent_clients_every_alert_once_on_the_topic_and_once_in_the_live_output(served):
    info = served.info
    # GIVEN a subscriber of our own on the alert topic (as a team's consumer would be)
    sqs, sns = served.aws("sqs"), served.aws("sns")
    queue = sqs.create_queue(QueueName="test-alert-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=info["alert_topic_arn"], Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"RawMessageDelivery": "false"})
    # WHEN 32 clients send 4 transactions each at once, half of them fraud
    bodies = [flagged(i) if i % 2 == 0 else ordinary(i) for i in range(128)]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda b: post(info["transactions_url"], b, info["api_key"])[0], bodies))
    # THEN every request is answered 201, none with a 5xx
    assert answers == [201] * len(bodies)
    # AND every flagged transaction gets exactly one alert on the topic ...
    expected = {b["transaction_id"] for b in bodies if b["merchant"] == "Unknown Store"}
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(set(seen)) < len(expected):
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            seen += re.findall(r"load-\d+", json.loads(m["Body"])["Message"])[:1]
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    time.sleep(2)  # anything duplicated would arrive by now
    for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        seen += re.findall(r"load-\d+", json.loads(m["Body"])["Message"])[:1]
    assert sorted(seen) == sorted(expected)
    # ... and exactly one alert block in serve's live output
    blocks = served.output().split("\n[fraud-alerts-")[1:]
    printed = [re.search(r"load-\d+", b).group(0) for b in blocks if re.search(r"load-\d+", b)]
    assert sorted(printed) == sorted(expected)
    # AND every accepted transaction is stored and scored
    table = served.aws("dynamodb")
    items = table.scan(TableName=info["table_name"], FilterExpression="record_type = :t",
                       ExpressionAttributeValues={":t": {"S": "transaction"}})["Items"]
    scored = {i["transaction_id"]["S"] for i in items if "decision" in i}
    assert {b["transaction_id"] for b in bodies} <= scored


def test_64_simultaneous_connections_are_all_answered(served):
    # GIVEN 64 clients that connect at the same instant (the old server's listen backlog was 5)
    info = served.info
    host, port = info["api_url"].split("//")[1].split("/")[0].split(":")
    barrier = threading.Barrier(64)
    results: list[str] = []

    def one(i: int) -> None:
        barrier.wait()
        with socket.create_connection((host, int(port)), timeout=60) as conn:
            body = json.dumps(ordinary(1000 + i)).encode()
            conn.sendall(b"POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"x-api-key: {info['api_key']}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + body)
            results.append(conn.makefile("rb").readline().decode())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # THEN none is reset or left unanswered, and none gets a 5xx
    assert len(results) == 64
    assert {line.split()[1] for line in results} == {"201"}


# --- the API's edges, as API Gateway answers them -------------------------------------------

def raw(served, request: bytes) -> tuple[int, dict, bytes]:
    host, port = served.info["api_url"].split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return status, {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "TRACE", "GET", "PUT", "DELETE"])
def test_a_method_the_route_lacks_is_403_missing_authentication_token(served, method):
    status, headers, body = post(served.info["transactions_url"], None, served.info["api_key"], method=method)
    assert status == 403 and headers["Content-Type"] == "application/json"
    assert "no such resource or method" in json.loads(body)["details"][0]["message"]


def test_head_is_403_without_a_body(served):
    status, headers, body = post(served.info["transactions_url"], None, served.info["api_key"], method="HEAD")
    assert (status, body) == (403, b"")


def test_a_path_without_the_stage_is_forbidden(served):
    url = served.info["transactions_url"].replace("/v1/", "/")
    status, _, body = post(url, ordinary(1), served.info["api_key"])
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})


@pytest.mark.parametrize("body, why", [
    ("[" * 10_000 + "]" * 10_000, "nested too deep"),
    ('{"amount": 10, "merchant": "\xff", "card_number": "4111111111111111", "location": "X"}', "not UTF-8"),
    ("not json", "not JSON"),
])
def test_a_body_the_model_cannot_read_is_400_and_stores_nothing(served, body, why):
    data = body.encode("latin-1") if why == "not UTF-8" else body.encode()
    status, headers, answer = post(served.info["transactions_url"], data, served.info["api_key"])
    assert status == 400, why
    assert json.loads(answer)["error"] == "Invalid request body"


def test_a_body_over_api_gateways_10_mb_is_413_json(served):
    status, headers, body = post(served.info["transactions_url"], b"a" * (10 * 1024 * 1024 + 1), served.info["api_key"])
    # the program's REQUEST_TOO_LARGE gateway response (the handler's error shape)
    assert status == 413 and json.loads(body)["error"] == "Request body too large"


@pytest.mark.parametrize("length", [b"abc", b"-5", b"1e3"])
def test_a_bad_content_length_is_400_json_not_a_dropped_connection(served, length):
    status, headers, body = raw(served, b"POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
                                + b"\r\n\r\n{}")
    assert status == 400 and headers["content-type"] == "application/json" and json.loads(body)["message"]


def test_a_chunked_body_is_read_like_any_other(served):
    body = json.dumps(ordinary(5000)).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, _, answer = raw(served, b"POST /v1/transactions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            + f"x-api-key: {served.info['api_key']}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".encode()
                            + chunked)
    assert status == 201 and json.loads(answer)["transaction_id"] == "plain-5000"


def test_the_openapi_document_is_served(served):
    with urllib.request.urlopen(served.info["openapi_url"], timeout=30) as response:
        document = json.loads(response.read())
    assert document["openapi"].startswith("3.") and "/transactions" in document["paths"]
    assert document["servers"][0]["url"] == served.info["api_url"]


# --- a service a script can drive -----------------------------------------------------------

def test_the_info_file_names_what_exists(served):
    info = served.info
    assert info["api_url"].endswith("/v1") and info["transactions_url"] == info["api_url"] + "/transactions"
    served.aws("kinesis").describe_stream_summary(StreamName=info["stream_name"])
    served.aws("dynamodb").describe_table(TableName=info["table_name"])
    served.aws("sns").get_topic_attributes(TopicArn=info["alert_topic_arn"])
    served.aws("s3").head_bucket(Bucket=info["archive_bucket"])


def banner_lines(output: str) -> list[str]:
    section = output.split("Try it:", 1)[1].split("Nothing is kept", 1)[0]
    return [line.strip() for line in section.splitlines() if line.strip().startswith(("printf ", "AWS_ACCESS_KEY_ID="))]


def aws_clis() -> list[tuple[str, str]]:
    """(label, path) of the AWS CLIs here: v1 from the dev install, v2 where the system has it (Debian: apt awscli)."""
    out = [("v1", str(Path(sys.executable).parent / "aws"))]
    system = shutil.which("aws", path="/usr/local/bin:/usr/bin")
    if system:
        version = subprocess.run([system, "--version"], capture_output=True, text=True).stdout
        if version.startswith("aws-cli/2."):
            out.append(("v2", system))
    return out


@pytest.mark.parametrize("label, cli", aws_clis(), ids=[c[0] for c in aws_clis()])
def test_every_aws_cli_line_of_the_banner_runs_as_printed(served, tmp_path, label, cli):
    lines = banner_lines(served.output())
    assert len(lines) == 5 and sum(" aws " in line for line in lines) == 3
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").symlink_to(cli)
    # no AWS settings from this machine: everything the line needs is on it
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    for line in lines:
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{label}: {line}\n{done.stderr}"
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, env=env)
    assert f"aws-cli/{label[1]}." in version.stdout + version.stderr


def test_a_second_serve_on_a_used_port_is_a_clear_error(served):
    port = served.info["api_url"].split(":")[2].split("/")[0]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fraud_pipeline.local", "serve", "--port", port, "--aws-port", "0"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port} (--port) is already in use" in done.stderr and "PORT=" in done.stderr
    assert time.monotonic() - started < 20


def test_the_api_key_is_the_same_at_every_restart_of_the_stack(served):
    from fraud_pipeline.evaluation import evaluate
    from fraud_pipeline.local.api_server import stable_api_key
    from fraud_pipeline.local.topology import topology

    spec = topology(evaluate("dev")).api
    assert served.info["api_key"] == stable_api_key(spec) == stable_api_key(topology(evaluate("dev")).api)
    assert stable_api_key(spec) != stable_api_key(topology(evaluate("staging")).api)


def test_sigterm_stops_serve_within_seconds_and_removes_the_info_file(tmp_path):
    s = ServeProcess(tmp_path)
    assert s.stop() < 10
    assert s.process.returncode == 0 and not s.info_file.exists()
