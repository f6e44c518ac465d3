"""The registry's champion as a file DVC can see: ``python -m components.registry.snapshot --help``.

``evaluate`` compares the challenger with the registry's current champion, which lives in
MLflow, out of DVC's sight. The DVC stage ``champion`` (``always_changed: true``) runs this on
every ``dvc repro`` and writes who the champion is (model, version, run id, content
fingerprint) to a small JSON file that ``evaluate`` depends on. Its bytes change exactly when
the champion moved, so DVC reruns evaluate (and register after it) exactly then.

Kubeflow has no such step: its evaluate task reads the registry at run time and is never cached.
"""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.registry import client

SECTIONS = ("register",)  # register.policy_model names the model (+ tracking: the store)

HELP = (
    "Write the registry's current champion (register.policy_model@champion: version, run id, "
    "fingerprint; nulls when there is none yet) to a JSON file, byte-identical while it does not "
    "move. An unreachable registry is an error, never 'no champion'."
)
app = make_app(HELP)


def champion(c, name: str) -> dict:
    """Who ``name@champion`` is: ``{"model", "alias", "version", "run_id", "fingerprint"}``,
    the last three None when there is no champion yet. Raises
    :class:`~components.registry.client.RegistryError` when the registry does not answer."""
    v = client.version_by_alias(c, name, "champion")
    found = {"version": None, "run_id": None, "fingerprint": None}
    if v is not None:
        found = {
            "version": int(v.version),
            "run_id": v.run_id,
            "fingerprint": (v.tags or {}).get(client.FINGERPRINT_TAG),
        }
    return {"model": name, "alias": "champion", **found}


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    out: Path = typer.Option(
        Path("reports/champion.json"), "--out", help="the snapshot (evaluate's DVC stage depends on it)"
    ),
) -> None:
    """Snapshot the champion (see HELP)."""
    with user_errors("champion"):
        from components.io import write_json
        from components.params import load_params
        from components.tracking import go_offline, tracking_uri

        go_offline()
        p = load_params(params, overrides(set_), only=SECTIONS)
        snap = champion(client.connect(tracking_uri(p.tracking)), p.register_.policy_model)
        write_json(out, snap)
        who = f"version {snap['version']}" if snap["version"] is not None else "none yet"
        print(f"{snap['model']}@champion: {who} -> {out}")


if __name__ == "__main__":
    app()
