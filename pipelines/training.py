"""The Encore training DAG (KFP v2). Task names match the ``dvc.yaml`` stage names.

``params`` is the whole ``params.yaml`` as a dict (its compiled default is the repo's
``params.yaml``); every task validates it into typed objects and reads its own section.
"""


import json
from pathlib import Path

import yaml
from kfp import dsl

from pipelines import ops

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def default_params(path: Path = PARAMS_FILE) -> dict:
    """params.yaml as JSON-compatible data (dates become ISO strings)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@dsl.pipeline(
    name="encore-training",
    description="Encore: simulate/ingest -> validate (later: features, labels, reward model, SFT, RLHF, evaluate, register).",
)
def training(params: dict = default_params()):
    sim = ops.simulate(params=params).set_display_name("simulate")
    sim.set_cpu_limit("2").set_memory_limit("8G")
    val = ops.validate(params=params, raw_logs=sim.outputs["raw_logs"]).set_display_name("validate")
    val.set_cpu_limit("2").set_memory_limit("8G")
