"""CLI: ``python -m components.serve --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.serve import SECTIONS

HELP = (
    "Serve slates over HTTP (FastAPI under uvicorn) from the registry aliases the experiment's arms "
    "name (serve.experiment), with the listeners' features from the Feast online store "
    "(features.store: embedded = SQLite under --features-dir, redis, or cluster).\n\n"
    "POST /slate {user_id, history?} -> tracks, per-slot propensities, arm, policy version, request id; "
    "POST /feedback {request_id, position, ms_played, skipped, saved}; GET /healthz, /readyz, /metrics.\n\n"
    "Every served slate is logged as impression rows (policy_id, propensity; outcomes empty until "
    "feedback) in append-only parquet parts under --log-dir/impressions/, feedback under "
    "--log-dir/feedback/; SIGTERM writes what is buffered before exiting. Turn them into raw-log "
    "contract tables with `python -m components.serve.export`. A moved alias is picked up every "
    "serve.poll_seconds without a restart. The registry is tracking.uri (MLFLOW_TRACKING_URI wins)."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    features_dir: Path = typer.Option(
        Path("data/features"),
        "--features-dir",
        help="the features stage's output (its feast/registry.db; the SQLite online store when embedded)",
    ),
    log_dir: Path = typer.Option(
        Path("local_outputs/served"),
        "--log-dir",
        help="where served impressions and feedback parts are appended",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0 in a container)"),
    port: int = typer.Option(8080, "--port", help="TCP port"),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR"),
) -> None:
    """Run the policy service (see HELP)."""
    with user_errors("serve"):
        import uvicorn

        from components.errors import EncoreError
        from components.params import load_params
        from components.serve.app import create_app
        from components.serve.jsonlog import configure
        from components.tracking import go_offline, tracking_uri

        go_offline()
        # a full params.yaml, or a file with just these sections (the cluster's ConfigMap)
        loaded = load_params(params, overrides(set_), only=SECTIONS)
        registry_file = features_dir / "feast" / "registry.db"
        if loaded.features.store != "cluster" and not registry_file.exists():
            raise EncoreError(
                f"{registry_file}: no Feast registry; run the features stage first (or pass --features-dir)."
            )
        configure(log_level.upper())
        server = create_app(loaded, features_dir, log_dir, tracking_uri(loaded.tracking))
        uvicorn.run(
            server,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=30,
        )


if __name__ == "__main__":
    app()
