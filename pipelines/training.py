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
from pipelines.scheduling import on_cpu, on_gpu

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def default_params(path: Path = PARAMS_FILE) -> dict:
    """params.yaml as JSON-compatible data (dates become ISO strings)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@dsl.pipeline(
    name="encore-training",
    description="Encore: simulate/ingest -> validate (later: features, labels, reward model, SFT, RLHF, evaluate, register).",
)
def training(params: dict = default_params()):
    sim = on_cpu(ops.simulate(params=params).set_display_name("simulate"))
    val = on_cpu(ops.validate(params=params, raw_logs=sim.outputs["raw_logs"]).set_display_name("validate"))
    feats = on_cpu(ops.features(params=params, raw_logs=sim.outputs["raw_logs"]).set_display_name("features"))
    feats.after(val)
    feats.set_caching_options(False)  # materialisation writes the online store: never skip it
    lab = on_cpu(ops.label(params=params, raw_logs=sim.outputs["raw_logs"]).set_display_name("label")).after(val)
    gpu = load_cluster().gpu
    for variant, name in (("midterm", "reward_model"), ("click", "reward_model_click")):
        on_gpu(ops.reward_model(
            params=params, variant=variant, raw_logs=sim.outputs["raw_logs"],
            features=feats.outputs["features"], labels=lab.outputs["labels"],
        ).set_display_name(name), gpu)
