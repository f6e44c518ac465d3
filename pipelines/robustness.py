"""The robustness suite as a Kubeflow pipeline: the training DAG once per (world, seed), in parallel.

The same suite as ``make robustness`` (:mod:`pipelines.sweep`, one ``dvc repro`` per run): the
``runs`` parameter lists each (world, seed) — ``pipelines.submit --suite`` builds it from
``params.yaml: robustness`` (:func:`components.robustness.settings.kfp_runs`). In each iteration of
the ``dsl.ParallelFor`` a ``suite_world`` task sets the world's ``simulate`` keys and seed and gives
the run registered-model names and an MLflow experiment of its own (``encore-policy-<run>``), the
whole training DAG runs on them, and ``suite_row`` reads its evaluation into a row; after the
loop ``robustness_table`` writes the table (JSON, Markdown summary, figure) from the collected rows.
"""

from kfp import dsl

from pipelines import ops
from pipelines.scheduling import on_cpu
from pipelines.training import training_dag


@dsl.pipeline(
    name="encore-robustness",
    description="Encore robustness suite: the training DAG on each world and seed (dsl.ParallelFor), "
    "then one table of true lifts over the logging policy, coverage and the gate's decisions.",
)
def robustness(
    runs: list,
    source: dict,
    tracking: dict,
    simulate: dict,
    ab: dict,
    validate: dict,
    features: dict,
    label: dict,
    experiments: dict,
    signals: dict,
    reward_model: dict,
    sft_policy: dict,
    rlhf_policy: dict,
    loop: dict,
    evaluate: dict,
    register: dict,
):
    # at most four worlds train at once: each run holds GPU nodes through its RL stages
    with dsl.ParallelFor(items=runs, parallelism=4) as run:
        world = on_cpu(
            ops.suite_world(
                simulate=simulate, register=register, tracking=tracking, run=run
            ).set_display_name("suite_world"),
            cpu="1",
            memory="1G",
        )
        ev = training_dag(
            source=source,
            tracking=world.outputs["tracking"],
            simulate=world.outputs["simulate"],
            ab=ab,
            validate=validate,
            features=features,
            label=label,
            experiments=experiments,
            signals=signals,
            reward_model=reward_model,
            sft_policy=sft_policy,
            rlhf_policy=rlhf_policy,
            loop=loop,
            evaluate=evaluate,
            register=world.outputs["register"],
        )
        row = on_cpu(
            ops.suite_row(run=run, evaluation=ev.outputs["evaluation"]).set_display_name("suite_row"),
            cpu="1",
            memory="1G",
        )
    on_cpu(
        ops.robustness_table(rows=dsl.Collected(row.output)).set_display_name("robustness_table"),
        cpu="1",
        memory="2G",
    )
