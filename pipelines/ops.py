"""One thin KFP component per stage: import the runtime, call it. No logic lives here.

(No ``from __future__ import annotations`` here: KFP reads the real annotation objects.)

Each component takes, as dict parameters, exactly the params sections its stage reads (the
stage package's ``SECTIONS`` + ``tracking``; the pipeline passes them by name, so a missing
or extra one fails at compile time). Editing one section of params.yaml therefore changes the
inputs, and the cache keys, of only the tasks that read it and the tasks downstream of them.

Components are lightweight Python components running in Encore's image (which has the
package installed, hence ``install_kfp_package=False``); ``kfp.local`` runs the same
functions in the current environment.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from pipelines.images import CPU_IMAGE, GPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def logs_fingerprint(source: dict) -> str:
    """Content hash of source.logs_dir ('world' when simulating): part of simulate's cache key."""
    from pipelines import runtime

    return runtime.logs_fingerprint(source)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def simulate(
    tracking: dict,
    source: dict,
    simulate: dict,
    logs_fingerprint: str,
    raw_logs: Output[Dataset],
    world: Output[Dataset],
    metrics: Output[Metrics],
):
    """Simulate the listening world, or ingest real logs when source.kind is 'logs'."""
    from pipelines import runtime

    runtime.raw_logs(
        {"tracking": tracking, "source": source, "simulate": simulate},
        raw_logs.path,
        world.path,
        metrics,
        fingerprint=logs_fingerprint,
    )


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def validate(
    tracking: dict, validate: dict, raw_logs: Input[Dataset], report: Output[HTML], metrics: Output[Metrics]
):
    """Validate the raw logs with Great Expectations; fail the run on a breach."""
    from pipelines import runtime

    runtime.validate({"tracking": tracking, "validate": validate}, raw_logs.path, report.path, metrics)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def experiments(
    tracking: dict,
    source: dict,
    experiments: dict,
    raw_logs: Input[Dataset],
    world: Input[Dataset],
    library: Output[Dataset],
    metrics: Output[Metrics],
):
    """The experiment library: the world's past A/B tests, or the arms of the logs' experiments table."""
    from pipelines import runtime

    runtime.experiments(
        {"tracking": tracking, "source": source, "experiments": experiments},
        raw_logs.path,
        world.path,
        library.path,
        metrics,
    )


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def signals(
    tracking: dict,
    signals: dict,
    label: dict,
    raw_logs: Input[Dataset],
    labels: Input[Dataset],
    library: Input[Dataset],
    scorecard: Output[Dataset],
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
):
    """The signal scorecard and the learned composite."""
    from pipelines import runtime

    runtime.signals(
        {"tracking": tracking, "signals": signals, "label": label},
        raw_logs.path,
        labels.path,
        library.path,
        scorecard.path,
        report.path,
        summary.path,
        metrics,
    )


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def features(
    tracking: dict,
    features: dict,
    raw_logs: Input[Dataset],
    feature_store: Output[Dataset],
    metrics: Output[Metrics],
):
    """Feature sources, feast apply + materialize, point-in-time training frame."""
    from pipelines import runtime

    runtime.features({"tracking": tracking, "features": features}, raw_logs.path, feature_store.path, metrics)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def label(
    tracking: dict, label: dict, raw_logs: Input[Dataset], labels: Output[Dataset], metrics: Output[Metrics]
):
    """Immediate and mid-term reward labels, surrogate index, composite reward."""
    from pipelines import runtime

    runtime.label({"tracking": tracking, "label": label}, raw_logs.path, labels.path, metrics)


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def reward_model(
    tracking: dict,
    reward_model: dict,
    features: dict,
    variant: str,
    raw_logs: Input[Dataset],
    feature_store: Input[Dataset],
    labels: Input[Dataset],
    scorecard: Input[Dataset],
    library: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Train the mid-term (or click) reward model with accelerate launch."""
    from pipelines import runtime

    runtime.reward_model(
        {"tracking": tracking, "reward_model": reward_model, "features": features},
        variant,
        raw_logs.path,
        feature_store.path,
        labels.path,
        scorecard.path,
        library.path,
        model.path,
        metrics,
    )


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def sft_policy(
    tracking: dict,
    sft_policy: dict,
    raw_logs: Input[Dataset],
    feature_store: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Train the generative recommender by imitation, with accelerate launch."""
    from pipelines import runtime

    runtime.sft_policy(
        {"tracking": tracking, "sft_policy": sft_policy},
        raw_logs.path,
        feature_store.path,
        model.path,
        metrics,
    )


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def rlhf_policy(
    tracking: dict,
    rlhf_policy: dict,
    features: dict,
    variant: str,
    raw_logs: Input[Dataset],
    feature_store: Input[Dataset],
    sft: Input[Model],
    reward: Input[Model],
    world: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """GRPO fine-tuning against the mid-term (or click) reward model, with accelerate launch."""
    from pipelines import runtime

    runtime.rlhf_policy(
        {"tracking": tracking, "rlhf_policy": rlhf_policy, "features": features},
        variant,
        raw_logs.path,
        feature_store.path,
        sft.path,
        reward.path,
        world.path,
        model.path,
        metrics,
    )


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def loop(
    tracking: dict,
    loop: dict,
    features: dict,
    label: dict,
    reward_model: dict,
    rlhf_policy: dict,
    sft_policy: dict,
    evaluate: dict,
    ab: dict,
    raw_logs: Input[Dataset],
    world: Input[Dataset],
    feature_store: Input[Dataset],
    labels: Input[Dataset],
    scorecard: Input[Dataset],
    library: Input[Dataset],
    sft: Input[Model],
    reward: Input[Model],
    policy: Input[Model],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """The closed loop, round by round: serve, log, relabel, retrain the reward model, RL again.
    ``model`` holds the final policy and reward model (the challenger), earlier rounds' policies
    and rounds.json."""
    from pipelines import runtime

    sections = {
        "tracking": tracking,
        "loop": loop,
        "features": features,
        "label": label,
        "reward_model": reward_model,
        "rlhf_policy": rlhf_policy,
        "sft_policy": sft_policy,
        "evaluate": evaluate,
        "ab": ab,
    }
    runtime.loop(
        sections,
        raw_logs.path,
        world.path,
        feature_store.path,
        labels.path,
        scorecard.path,
        library.path,
        sft.path,
        reward.path,
        policy.path,
        model.path,
        metrics,
    )


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def evaluate(
    tracking: dict,
    evaluate: dict,
    ab: dict,
    register: dict,
    features: dict,
    label: dict,
    reward_model: dict,
    sft_policy: dict,
    raw_logs: Input[Dataset],
    feature_store: Input[Dataset],
    labels: Input[Dataset],
    scorecard: Input[Dataset],
    library: Input[Dataset],
    world: Input[Dataset],
    sft: Input[Model],
    loop: Input[Model],
    click_policy: Input[Model],
    evaluation: Output[Dataset],
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
) -> NamedTuple("Gate", [("promote", bool)]):
    """Off-policy estimates, ranking, the simulated A/B test (an arm per loop round); the gate's
    decision on the loop's final policy as the typed output ``promote``."""
    from collections import namedtuple

    from pipelines import runtime

    sections = {
        "tracking": tracking,
        "evaluate": evaluate,
        "ab": ab,
        "register": register,
        "features": features,
        "label": label,
        "reward_model": reward_model,
        "sft_policy": sft_policy,
    }
    promote = runtime.evaluate(
        sections,
        raw_logs.path,
        feature_store.path,
        labels.path,
        scorecard.path,
        library.path,
        world.path,
        sft.path,
        loop.path,
        click_policy.path,
        evaluation.path,
        report.path,
        summary.path,
        metrics,
    )
    return namedtuple("Gate", ["promote"])(promote)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def register(
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
    promote: bool,
    loop_models: Input[Model],
    evaluation: Input[Dataset],
    metrics: Output[Metrics],
    pipeline_run_id: str = "",
):
    """Register the loop's final policy and reward model in MLflow: challenger always, champion only
    if ``promote`` (which must match the evaluation's gate.json). Takes every section: the registered
    versions carry a hash of all of them."""
    from pipelines import runtime

    sections = {
        "source": source,
        "tracking": tracking,
        "simulate": simulate,
        "ab": ab,
        "validate": validate,
        "features": features,
        "label": label,
        "experiments": experiments,
        "signals": signals,
        "reward_model": reward_model,
        "sft_policy": sft_policy,
        "rlhf_policy": rlhf_policy,
        "loop": loop,
        "evaluate": evaluate,
        "register": register,
    }
    runtime.register(
        sections,
        promote,
        loop_models.path + "/policy",
        loop_models.path + "/reward",
        evaluation.path,
        metrics,
        pipeline_run_id,
    )


# ---------------------------------------------------------------------------- the robustness suite


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def suite_world(simulate: dict, register: dict, tracking: dict, run: dict) -> NamedTuple(
    "SuiteWorld", [("simulate", dict), ("register", dict), ("tracking", dict)]
):
    """One (world, seed) of the robustness suite: its simulate section, and registry names and an
    MLflow experiment of its own."""
    from collections import namedtuple

    from pipelines import runtime

    out = runtime.suite_world(simulate, register, tracking, run)
    return namedtuple("SuiteWorld", ["simulate", "register", "tracking"])(
        out["simulate"], out["register"], out["tracking"]
    )


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def suite_row(run: dict, evaluation: Input[Dataset]) -> dict:
    """One run's row of the suite's table (true lifts, coverage, the gate and its verdict)."""
    from pipelines import runtime

    return runtime.suite_row(run, evaluation.path)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def robustness_table(rows: list, table: Output[Dataset], summary: Output[Markdown]):
    """The suite's table: per world and seed, each policy's true lift over logging, the gate's decision."""
    from pipelines import runtime

    runtime.robustness_table(rows, table.path, summary.path)
