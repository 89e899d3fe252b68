"""`serve` as a child process, driven the way a script or a CI job drives it (tests and `make bench`).

It starts `python -m fraud_pipeline.local serve --info-file FILE`, waits for the file (written
once the emulation is ready), and keeps everything the process printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServeProcess:
    def __init__(self, workdir: Path, *, stack: str = "dev", port: int = 0, aws_port: int = 0,
                 ready_timeout: float = 180.0):
        workdir.mkdir(parents=True, exist_ok=True)
        self.info_file = workdir / "serve-info.json"
        self.out = workdir / "serve.out"
        self._out = self.out.open("w")
        env = {**os.environ, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fraud_pipeline.local", "serve", "--stack", stack, "--port", str(port),
             "--aws-port", str(aws_port), "--info-file", str(self.info_file)],
            cwd=REPO_ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + ready_timeout
        while not self.info_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"serve did not start:\n{self.output()}")
            time.sleep(0.2)
        self.info: dict[str, Any] = json.loads(self.info_file.read_text())

    def output(self) -> str:
        """Everything serve printed so far (banner, alerts)."""
        self._out.flush()
        return self.out.read_text()

    def aws(self, service: str) -> Any:
        """A boto3 client of the emulated AWS endpoint."""
        return boto3.client(service, endpoint_url=self.info["aws_endpoint"], region_name=self.info["region"],
                            aws_access_key_id="local", aws_secret_access_key="local")

    def stop(self) -> float:
        """SIGTERM, then wait; returns the seconds it took to exit."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()
        return time.monotonic() - started
