"""Stage ``register``: record the models in MLflow and move aliases by the gate's decision.

Every new (policy, reward model) pair is registered with signatures and lineage tags (git
commit, DVC data hash, params hash, pipeline run id) and becomes ``challenger``; it becomes
``champion`` only if the evaluation's gate said ``promote``. Aliases move last, after every
registration succeeded, so a failure leaves them where they were. The same inputs again
register nothing new (a content fingerprint is kept on each version).
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

from components.errors import EncoreError
from components.params import Params
from components.register import registry as R

GATE_FILE = "gate.json"


def run(params: Params, policy_dir: Path, reward_dir: Path, evaluation_dir: Path, repo: Path,
        pipeline_run_id: str | None = None) -> dict:
    """Register and (maybe) promote; returns the decision record (also ``metrics/register.json``).

    ``pipeline_run_id``: the Kubeflow run (the pipeline passes its job id); ``dvc-local`` otherwise."""
    import mlflow

    rp = params.register_
    gate_path = Path(evaluation_dir) / GATE_FILE
    if not gate_path.exists():
        raise EncoreError(f"{gate_path}: no gate decision; the evaluate stage must run (and succeed) first.")
    gate = json.loads(gate_path.read_text())
    uri = os.environ.get("MLFLOW_TRACKING_URI", params.tracking.uri)
    c = R.client(uri)
    fp = R.fingerprint(policy_dir, reward_dir, extra=params.section_hash(*params.model_dump(by_alias=True)))
    record: dict = {"gate": gate["gate"], "reasons": gate["reasons"], "fingerprint": fp, "tracking_uri": uri}

    existing = R.version_with_fingerprint(c, rp.policy_model, fp)
    if existing is not None:
        return record | {"registered": False, "promoted": False, "policy_version": int(existing.version),
                         "note": "these exact models are already registered: nothing new, no alias moved"}

    tags = {
        "encore.git_commit": R.git_commit(repo),
        "encore.dvc_data_hash": R.dvc_data_hash(repo),
        "encore.params_hash": params.section_hash(*params.model_dump(by_alias=True)),
        "encore.pipeline_run_id": pipeline_run_id or os.environ.get("KFP_RUN_ID", "dvc-local"),
        R.FINGERPRINT_TAG: fp,
        "encore.gate": gate["gate"],
    }
    # inside the stage's MLflow run when tracking is on; a run of its own otherwise
    active = mlflow.active_run()
    with (nullcontext(active) if active else mlflow.start_run(run_name="register")) as mlrun:
        mlflow.set_tags(tags)
        mlflow.log_dict(gate, "gate.json")
        _log_models(policy_dir, reward_dir)
        run_id = mlrun.info.run_id

    policy_v = mlflow.register_model(f"runs:/{run_id}/policy", rp.policy_model, tags=tags)
    reward_v = mlflow.register_model(f"runs:/{run_id}/reward_model", rp.reward_model, tags=tags)
    # aliases last: a failure above leaves them untouched
    for name, v in ((rp.reward_model, reward_v), (rp.policy_model, policy_v)):
        c.set_registered_model_alias(name, "challenger", v.version)
    if gate["gate"] == "promote":
        for name, v in ((rp.reward_model, reward_v), (rp.policy_model, policy_v)):
            c.set_registered_model_alias(name, "champion", v.version)
    return record | {"registered": True, "promoted": gate["gate"] == "promote",
                     "policy_version": int(policy_v.version), "reward_version": int(reward_v.version), "run_id": run_id}


def _log_models(policy_dir: Path, reward_dir: Path) -> None:
    """Both models as pyfunc models with signatures; the reward model is loaded first so a broken
    one fails here, before anything is registered."""
    import polars as pl

    from components.reward_model.mlflow_model import log_reward_model
    from components.reward_model.model import RewardModel
    from components.sft_policy.mlflow_model import log_policy

    example_file = Path(reward_dir) / "example.parquet"
    if not example_file.exists():
        raise EncoreError(f"{reward_dir}: no example.parquet; retrain the reward model with this version of Encore.")
    RewardModel.load(reward_dir)
    log_policy(policy_dir, "policy")
    log_reward_model(reward_dir, pl.read_parquet(example_file), "reward_model")
