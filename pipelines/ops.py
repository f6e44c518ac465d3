"""One thin KFP component per stage: import the runtime, call it. No logic lives here.

(No ``from __future__ import annotations`` here: KFP reads the real annotation objects.)

Components are lightweight Python components running in Encore's image (which has the
package installed, hence ``install_kfp_package=False``); ``kfp.local`` runs the same
functions in the current environment.
"""


from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from pipelines.images import CPU_IMAGE, GPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def simulate(params: dict, raw_logs: Output[Dataset], world: Output[Dataset], metrics: Output[Metrics]):
    """Simulate the listening world, or ingest real logs when source.kind is 'logs'."""
    from pipelines import runtime

    runtime.raw_logs(params, raw_logs.path, world.path, metrics)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def validate(params: dict, raw_logs: Input[Dataset], report: Output[HTML], metrics: Output[Metrics]):
    """Validate the raw logs with Great Expectations; fail the run on a breach."""
    from pipelines import runtime

    runtime.validate(params, raw_logs.path, report.path, metrics)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def features(params: dict, raw_logs: Input[Dataset], features: Output[Dataset], metrics: Output[Metrics]):
    """Feature sources, feast apply + materialize, point-in-time training frame."""
    from pipelines import runtime

    runtime.features(params, raw_logs.path, features.path, metrics)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def label(params: dict, raw_logs: Input[Dataset], labels: Output[Dataset], metrics: Output[Metrics]):
    """Immediate and mid-term reward labels, surrogate index, composite reward."""
    from pipelines import runtime

    runtime.label(params, raw_logs.path, labels.path, metrics)


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def reward_model(params: dict, variant: str, raw_logs: Input[Dataset], features: Input[Dataset],
                 labels: Input[Dataset], model: Output[Model], metrics: Output[Metrics]):
    """Train the mid-term (or click) reward model with accelerate launch."""
    from pipelines import runtime

    runtime.reward_model(params, variant, raw_logs.path, features.path, labels.path, model.path, metrics)


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def sft_policy(params: dict, raw_logs: Input[Dataset], features: Input[Dataset], model: Output[Model], metrics: Output[Metrics]):
    """Train the generative recommender by imitation, with accelerate launch."""
    from pipelines import runtime

    runtime.sft_policy(params, raw_logs.path, features.path, model.path, metrics)


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def rlhf_policy(params: dict, variant: str, raw_logs: Input[Dataset], features: Input[Dataset], sft: Input[Model],
                reward: Input[Model], world: Input[Dataset], model: Output[Model], metrics: Output[Metrics]):
    """GRPO fine-tuning against the mid-term (or click) reward model, with accelerate launch."""
    from pipelines import runtime

    runtime.rlhf_policy(params, variant, raw_logs.path, features.path, sft.path, reward.path, world.path, model.path, metrics)


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def evaluate(params: dict, raw_logs: Input[Dataset], features: Input[Dataset], labels: Input[Dataset], world: Input[Dataset],
             reward: Input[Model], sft: Input[Model], policy: Input[Model], click_policy: Input[Model],
             evaluation: Output[Dataset], report: Output[HTML], summary: Output[Markdown], metrics: Output[Metrics]) -> str:
    """Off-policy estimates, ranking, the simulated A/B test, the gate (returned: promote | hold)."""
    from pipelines import runtime

    return runtime.evaluate(params, raw_logs.path, features.path, labels.path, world.path, reward.path, sft.path,
                            policy.path, click_policy.path, evaluation.path, report.path, summary.path, metrics)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def register(params: dict, policy: Input[Model], reward: Input[Model], evaluation: Input[Dataset], metrics: Output[Metrics],
             pipeline_run_id: str = ""):
    """Register in MLflow: challenger always, champion only if the gate passed."""
    from pipelines import runtime

    runtime.register(params, policy.path, reward.path, evaluation.path, metrics, pipeline_run_id)
