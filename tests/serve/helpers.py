"""A real policy service for tests and the latency benchmark: a registered policy in a local
MLflow (SQLite) and ``python -m components.serve`` as a uvicorn subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 180


def register(uri: str, name: str, policy_dir: Path, artifacts: Path, aliases: tuple[str, ...] = ()) -> int:
    """Log ``policy_dir`` as the pyfunc policy model (as the register stage does), register it
    under ``name`` and point ``aliases`` at it; the new version."""
    import mlflow

    from components.policy.pyfunc import log_policy
    from components.registry.client import connect

    client = connect(uri)
    experiment = "serve-tests"
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=Path(artifacts).resolve().as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run():
        info = log_policy(Path(policy_dir), "policy")
    version = int(mlflow.register_model(info.model_uri, name).version)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, str(version))
    return version


def perturbed(src: Path, dst: Path, seed: int, scale: float = 0.5) -> Path:
    """A different policy of the same architecture: ``src`` with noise on every weight."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    weights = load_file(str(dst / "model.safetensors"))
    torch.manual_seed(seed)
    save_file(
        {k: v + scale * torch.randn_like(v) for k, v in weights.items()}, str(dst / "model.safetensors")
    )
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_params(path: Path, changes: dict[str, Any]) -> Path:
    """The repository's params.yaml with dotted-key ``changes``."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        assert leaf in node, dotted
        node[leaf] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class Server:
    """``python -m components.serve`` in a subprocess; JSON over plain HTTP."""

    def __init__(self, params: Path, features_dir: Path, log_dir: Path, tracking_uri: str, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(workdir) / "server.log"
        argv = [
            sys.executable,
            "-m",
            "components.serve",
            "--params",
            str(params),
            "--features-dir",
            str(features_dir),
            "--log-dir",
            str(log_dir),
            "--port",
            str(self.port),
        ]
        env = os.environ | {"MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(REPO)}
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, body = self.request("GET", "/readyz")
                if status == 200:
                    return body
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the server was not ready after {timeout} s:\n{self.log_tail()}")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        text = raw.decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (what Kubernetes sends) and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, chars: int = 4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()[-chars:]
