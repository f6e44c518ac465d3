"""The Encore training DAG (KFP v2). Task names match the ``dvc.yaml`` stage names.

``params`` is the whole ``params.yaml`` as a dict (its compiled default is the repo's
``params.yaml``); every task validates it into typed objects and reads its own section.
"""


import json
from pathlib import Path

import yaml
from kfp import dsl

from pipelines import ops
from pipelines.images import load_cluster
from pipelines.scheduling import on_cpu, on_gpu, with_cluster_feast

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def default_params(path: Path = PARAMS_FILE) -> dict:
    """params.yaml as JSON-compatible data (dates become ISO strings)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@dsl.pipeline(
    name="encore-training",
    description="Encore: simulate/ingest -> validate -> features, labels -> reward models (mid-term, click), SFT -> "
                "RLHF (mid-term, click) -> evaluate -> register (champion only if the gate passes).",
)
def training(params: dict = default_params()):
    sim = on_cpu(ops.simulate(params=params).set_display_name("simulate"))
    val = on_cpu(ops.validate(params=params, raw_logs=sim.outputs["raw_logs"]).set_display_name("validate"))
    feats = with_cluster_feast(on_cpu(ops.features(params=params, raw_logs=sim.outputs["raw_logs"]).set_display_name("features")))
    feats.after(val)
    feats.set_caching_options(False)  # materialisation writes the online store: never skip it
    lab = on_cpu(ops.label(params=params, raw_logs=sim.outputs["raw_logs"]).set_display_name("label")).after(val)
    gpu = load_cluster().gpu
    raw, features = sim.outputs["raw_logs"], feats.outputs["features"]
    sft = on_gpu(ops.sft_policy(params=params, raw_logs=raw, features=features).set_display_name("sft_policy"), gpu)
    rms, rls = {}, {}
    for variant, suffix in (("midterm", ""), ("click", "_click")):
        rms[variant] = on_gpu(ops.reward_model(
            params=params, variant=variant, raw_logs=raw, features=features, labels=lab.outputs["labels"],
        ).set_display_name(f"reward_model{suffix}"), gpu)
        rls[variant] = on_gpu(ops.rlhf_policy(
            params=params, variant=variant, raw_logs=raw, features=features, sft=sft.outputs["model"],
            reward=rms[variant].outputs["model"], world=sim.outputs["world"],
        ).set_display_name(f"rlhf_policy{suffix}"), gpu)
    ev = on_gpu(ops.evaluate(
        params=params, raw_logs=raw, features=features, labels=lab.outputs["labels"], world=sim.outputs["world"],
        reward=rms["midterm"].outputs["model"], sft=sft.outputs["model"], policy=rls["midterm"].outputs["model"],
        click_policy=rls["click"].outputs["model"],
    ).set_display_name("evaluate"), gpu)
    ev.set_caching_options(False)  # the gate reads the registry's current champion
    registered = {"params": params, "policy": rls["midterm"].outputs["model"], "reward": rms["midterm"].outputs["model"],
                  "evaluation": ev.outputs["evaluation"], "pipeline_run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER}
    with dsl.If(ev.outputs["Output"] == "promote", name="gate-passed"):
        on_cpu(ops.register(**registered).set_display_name("register")).set_caching_options(False)
    with dsl.Else(name="gate-held"):
        # the challenger is still registered (alias 'challenger'); the champion stays where it is
        on_cpu(ops.register(**registered).set_display_name("register_hold")).set_caching_options(False)
