"""Stage ``register``: record the models in MLflow and move aliases by the gate's decision.

Every new (policy, reward model) pair is logged as pyfunc models (signatures, the Encore code
inside them) and registered from the logged models' own URIs, with lineage tags (git commit,
DVC data hash, params hash, pipeline run id); the policy version becomes ``challenger``, and
``champion`` only if the evaluation's gate said ``promote``. The evaluation's numbers for the
challenger are logged against its logged model (``model_id``).

What it guarantees:
- **Nothing moves on a stale decision.** ``gate.json`` names the champion version the challenger
  was compared with; if the registry's champion is another version now (a concurrent run
  promoted first), register refuses with an error and moves nothing. (MLflow has no atomic
  compare-and-set on aliases: two registers within the same moment can still race; runs of one
  pipeline are serialised by DVC or the KFP DAG.)
- **Resumable.** Aliases move last, after every registration succeeded; each version carries a
  content fingerprint and, once every alias is in place, ``encore.registration = complete``. A
  rerun after a failure at any step finds the versions already registered and finishes what
  is missing; a rerun after a completed registration registers and moves nothing.
- **An unreachable registry is an error** (:class:`components.registry.client.RegistryError`),
  never "no champion".
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

from components.errors import EncoreError
from components.params import RUNTIME_SECTIONS, Params
from components.registry import client as registry
from components.registry.gate import read_decision
from components.tracking import tracking_uri

CHALLENGER = "rlhf_midterm"  # the evaluation's name for the policy being registered
COMPLETE_TAG = "encore.registration"


def run(
    params: Params,
    policy_dir: Path,
    reward_dir: Path,
    evaluation_dir: Path,
    repo: Path,
    pipeline_run_id: str | None = None,
    promote: bool | None = None,
) -> dict:
    """Register and (maybe) promote; returns the decision record (also ``metrics/register.json``).

    ``pipeline_run_id``: the Kubeflow run (the pipeline passes its job id); ``dvc-local`` otherwise.
    ``promote``: the decision as the Kubeflow DAG carried it; it must agree with ``gate.json``."""
    import mlflow

    rp = params.register_
    gate = read_decision(evaluation_dir)
    if promote is not None and promote != (gate["gate"] == "promote"):
        raise EncoreError(
            f"{evaluation_dir}: the pipeline passed promote={promote} but gate.json says "
            f"'{gate['gate']}'; refusing to register from an inconsistent decision."
        )
    uri = tracking_uri(params.tracking)
    c = registry.connect(uri)
    params_hash = params.section_hash(*RUNTIME_SECTIONS)
    fp = registry.fingerprint(policy_dir, reward_dir, extra=params_hash)
    record: dict = {"gate": gate["gate"], "reasons": gate["reasons"], "fingerprint": fp, "tracking_uri": uri}

    policy_v = registry.version_with_fingerprint(c, rp.policy_model, fp)
    reward_v = registry.version_with_fingerprint(c, rp.reward_model, fp)
    if policy_v is not None and policy_v.tags.get(COMPLETE_TAG) == "complete":
        return record | {
            "registered": False,
            "promoted": False,
            "policy_version": int(policy_v.version),
            "note": "these exact models are already registered: nothing new, no alias moved",
        }
    promote_it = gate["gate"] == "promote"
    if promote_it:
        _check_champion_unmoved(c, rp.policy_model, gate, evaluation_dir, policy_v)

    tags = {
        "encore.git_commit": registry.git_commit(repo),
        "encore.dvc_data_hash": registry.dvc_data_hash(repo),
        "encore.params_hash": params_hash,
        "encore.pipeline_run_id": pipeline_run_id or os.environ.get("KFP_RUN_ID", "dvc-local"),
        registry.FINGERPRINT_TAG: fp,
        "encore.gate": gate["gate"],
    }
    run_id, policy_model_id = None, None
    if policy_v is None or reward_v is None:
        # inside the stage's MLflow run when tracking is on; a run of its own otherwise
        active = mlflow.active_run()
        with nullcontext(active) if active else mlflow.start_run(run_name="register") as mlrun:
            mlflow.set_tags(tags)
            mlflow.log_dict(gate, "gate.json")
            policy_model, reward_model = _log_models(policy_dir, reward_dir)
            mlflow.log_metrics(challenger_metrics(gate, evaluation_dir), model_id=policy_model.model_id)
            run_id, policy_model_id = mlrun.info.run_id, policy_model.model_id
        if policy_v is None:
            policy_v = mlflow.register_model(policy_model.model_uri, rp.policy_model, tags=tags)
        if reward_v is None:
            reward_v = mlflow.register_model(reward_model.model_uri, rp.reward_model, tags=tags)
    # aliases last (setting an alias again is a no-op): a failure above leaves them untouched
    versions = ((rp.reward_model, reward_v), (rp.policy_model, policy_v))
    for alias in ("challenger", "champion") if promote_it else ("challenger",):
        for name, v in versions:
            c.set_registered_model_alias(name, alias, v.version)
    for name, v in versions:
        c.set_model_version_tag(name, v.version, COMPLETE_TAG, "complete")
    return record | {
        "registered": True,
        "promoted": promote_it,
        "policy_version": int(policy_v.version),
        "reward_version": int(reward_v.version),
        "run_id": run_id,
        "policy_model_id": policy_model_id,
    }


def _check_champion_unmoved(c, name: str, gate: dict, evaluation_dir: Path, own) -> None:
    """Compare-and-set: promote only over the champion the gate compared against (or over this
    very version, when a previous attempt moved part of the aliases before failing)."""
    expected = gate.get("champion_version")
    now = registry.version_by_alias(c, name, "champion")
    current = None if now is None else int(now.version)
    if current == expected or (own is not None and current == int(own.version)):
        return
    compared = f"champion version {expected}" if expected is not None else "the logging policy (no champion)"
    found = f"version {current}" if current is not None else "unset"
    raise EncoreError(
        f"{Path(evaluation_dir) / 'gate.json'}: the gate compared the challenger with {compared}, but "
        f"{name}@champion is now {found}: another run promoted in between. Nothing registered, no "
        "alias moved; re-run evaluate."
    )


def challenger_metrics(gate: dict, evaluation_dir: Path) -> dict[str, float]:
    """What evaluation measured of the challenger: the gate's lift and guardrails, its off-policy
    estimates, and (in simulation) its true A/B lift over the logging policy."""
    out = {
        "gate/promote": float(gate["promote"]),
        "gate/lift": gate["lift"],
        "gate/lift_low": gate["lift_low"],
        "gate/lift_high": gate["lift_high"],
    }
    out |= {f"gate/{name}": check["value"] for name, check in gate["guardrails"].items()}
    tables_file = Path(evaluation_dir) / "evaluation.json"
    if tables_file.exists():
        tables = json.loads(tables_file.read_text())
        for e in tables["ope"].get(CHALLENGER, []):
            out |= {f"ope/{e['estimator']}/{k}": e[k] for k in ("value", "low", "high", "ess")}
        for row in (tables.get("truth") or {}).get("lifts", {}).get("logging", []):
            if row["arm"] == CHALLENGER:
                out[f"ab/lift_vs_logging/{row['metric']}"] = row["estimate"]
    return {k: float(v) for k, v in out.items() if v is not None and v == v}


def _log_models(policy_dir: Path, reward_dir: Path):
    """Both models as pyfunc models with signatures; the reward model is loaded first so a broken
    one fails here, before anything is registered. Returns their ModelInfos (policy, reward)."""
    import polars as pl

    from components.policy.pyfunc import log_policy
    from components.reward.model import EXAMPLE_FILE, RewardModel
    from components.reward.pyfunc import log_reward_model

    example_file = Path(reward_dir) / EXAMPLE_FILE
    if not example_file.exists():
        raise EncoreError(
            f"{reward_dir}: no {EXAMPLE_FILE}; retrain the reward model with this version of Encore."
        )
    RewardModel.load(reward_dir)
    policy = log_policy(policy_dir, "policy")
    reward = log_reward_model(reward_dir, pl.read_parquet(example_file), "reward_model")
    return policy, reward
