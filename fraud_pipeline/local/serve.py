"""`python -m fraud_pipeline.local serve`: the emulated pipeline kept up for a person or a real client."""

from __future__ import annotations

import json
import signal
import sys
import threading

from .emulator import Alert, Emulator


def _print_alert(alert: Alert) -> None:
    stage = alert.attributes.get("stage", "detection")
    print(f"\n[{alert.topic}] {alert.subject}  ({stage}; decision={alert.attributes.get('decision')}, "
          f"severity={alert.attributes.get('severity')})\n{alert.message}\n", flush=True)


def run(stack: str, port: int, aws_port: int) -> int:
    print(f"Evaluating the program for stack '{stack}' and materialising it on moto ...", flush=True)
    em = Emulator(stack, aws_port=aws_port, on_alert=_print_alert)
    stop = threading.Event()
    try:
        url = em.start_api(port=port)
        em.start()
        stream = em.topo.streams[0]["name"]
        table = next(t.name for t in em.topo.tables if t.stream_view_type)
        label_url = em.url(em.function("label").name, transaction_id="readme-1")
        label_template = em.url(em.function("label").name, transaction_id="{transaction_id}")
        bucket = em.archive_bucket
        example = json.dumps({"transaction_id": "readme-1", "amount": 15000.00, "merchant": "Unknown Store",
                              "card_number": "1234567890123456", "location": "Nigeria"})
        creds = f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={em.topo.region}"
        print(f"""
fraud-pipeline is up (stack {stack}, region {em.topo.region}).

  REST API      POST {url}
                POST {label_template}
  API key       {em.api.api_key}
  AWS endpoint  {em.endpoint}   (any access key; region {em.topo.region})
  Label files   s3://{bucket}/labels/   (label-ingest runs on each upload; refused rows in rejected/labels/)

Try it:
  curl -s -X POST {url} -H 'x-api-key: {em.api.api_key}' -H 'Content-Type: application/json' \\
       -d '{example}'

  curl -s -X POST {label_url} -H 'x-api-key: {em.api.api_key}' \\
       -H 'Content-Type: application/json' -d '{{"label": "fraud", "source": "analyst", "note": "confirmed"}}'

  {creds} \\
  aws --endpoint-url {em.endpoint} kinesis put-record --stream-name {stream} --partition-key p1 \\
      --cli-binary-format raw-in-base64-out \\
      --data '{{"transaction_id": "test-123", "amount": 5500, "hour": 23, "location_mismatch": true}}'

  printf 'transaction_id,label,source,labelled_at\\ntest-123,fraud,chargeback,\\n' > chargebacks.csv
  {creds} \\
  aws --endpoint-url {em.endpoint} s3 cp chargebacks.csv s3://{bucket}/labels/chargebacks.csv

  {creds} \\
  aws --endpoint-url {em.endpoint} dynamodb scan --table-name {table}

Alerts are printed below as they are published. Ctrl-C stops.""", flush=True)
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
        print("\nStopping ...", flush=True)
        return 0
    finally:
        em.close()


if __name__ == "__main__":
    sys.exit(run("dev", 8080, 5000))
