"""The Encore training DAG (KFP v2). Task names match the ``dvc.yaml`` stage names.

The pipeline takes one dict parameter per runtime section of ``params.yaml`` and no
defaults: the compiled spec does not embed the parameters (only the compile-time
``cluster`` section: images and GPU placement), and ``pipelines.submit`` passes the
sections of the params file it is given. Each task gets the sections its stage declares
(``components/<stage>/__init__.py: SECTIONS``), so an edit to ``rlhf_policy`` changes the
inputs of the RL tasks and of what runs after them, and leaves every upstream task cached.

Never cached, because each reads or writes something outside its inputs: ``logs_fingerprint``
(the logs as they are now), ``features`` (writes the online store), ``evaluate`` (reads the
registry's champion at run time) and ``register`` (writes the registry). Every task runs
hardened (:func:`pipelines.scheduling.hardened`).
"""

from kfp import dsl

from pipelines import ops
from pipelines.images import load_cluster
from pipelines.scheduling import on_cpu, on_gpu, with_cluster_feast


def training_dag(
    source,
    tracking,
    simulate,
    ab,
    validate,
    features,
    label,
    experiments,
    signals,
    reward_model,
    sft_policy,
    rlhf_policy,
    loop,
    evaluate,
    register,
):
    """The training DAG's tasks, added to the pipeline being built (the training pipeline, or one
    iteration of the robustness suite's loop); returns the evaluate task. Each argument is a
    params section: a pipeline parameter, or another task's output (the suite's world)."""
    gpu = load_cluster().gpu
    # KFP caches a task on its parameters and its inputs' artifact *names*, never on what a path
    # holds: the logs' content reaches simulate's cache key only as this (never cached) value,
    # so new logs re-ingest and rerun everything after, and unchanged logs keep every cache.
    fingerprint = on_cpu(
        ops.logs_fingerprint(source=source).set_display_name("logs_fingerprint"), cpu="1", memory="1G"
    ).set_caching_options(False)
    sim = on_cpu(
        ops.simulate(
            tracking=tracking, source=source, simulate=simulate, logs_fingerprint=fingerprint.output
        ).set_display_name("simulate")
    )
    raw, world = sim.outputs["raw_logs"], sim.outputs["world"]
    val = on_cpu(
        ops.validate(tracking=tracking, validate=validate, raw_logs=raw).set_display_name("validate")
    )
    feats = (
        ops.features(tracking=tracking, features=features, raw_logs=raw)
        .set_display_name("features")
        .after(val)
    )
    with_cluster_feast(on_cpu(feats)).set_caching_options(
        False
    )  # materialisation writes the online store: never skip it
    store = feats.outputs["feature_store"]
    lab = on_cpu(ops.label(tracking=tracking, label=label, raw_logs=raw).set_display_name("label")).after(val)
    exp = on_cpu(
        ops.experiments(tracking=tracking, source=source, experiments=experiments, raw_logs=raw, world=world)
        .set_display_name("experiments")
        .after(val)
    )
    library = exp.outputs["library"]
    sig = on_cpu(
        ops.signals(
            tracking=tracking,
            signals=signals,
            label=label,
            raw_logs=raw,
            labels=lab.outputs["labels"],
            library=library,
        ).set_display_name("signals")
    )
    scorecard = sig.outputs["scorecard"]
    sft = on_gpu(
        ops.sft_policy(
            tracking=tracking, sft_policy=sft_policy, raw_logs=raw, feature_store=store
        ).set_display_name("sft_policy"),
        gpu,
    )
    rms, rls = {}, {}
    for variant, suffix in (("midterm", ""), ("click", "_click")):
        rms[variant] = on_gpu(
            ops.reward_model(
                tracking=tracking,
                reward_model=reward_model,
                features=features,
                variant=variant,
                raw_logs=raw,
                feature_store=store,
                labels=lab.outputs["labels"],
                scorecard=scorecard,
                library=library,
            ).set_display_name(f"reward_model{suffix}"),
            gpu,
        )
        rls[variant] = on_gpu(
            ops.rlhf_policy(
                tracking=tracking,
                rlhf_policy=rlhf_policy,
                features=features,
                variant=variant,
                raw_logs=raw,
                feature_store=store,
                sft=sft.outputs["model"],
                reward=rms[variant].outputs["model"],
                world=world,
            ).set_display_name(f"rlhf_policy{suffix}"),
            gpu,
        )
    closed_loop = on_gpu(
        ops.loop(
            tracking=tracking,
            loop=loop,
            features=features,
            label=label,
            reward_model=reward_model,
            rlhf_policy=rlhf_policy,
            sft_policy=sft_policy,
            evaluate=evaluate,
            ab=ab,
            raw_logs=raw,
            world=world,
            feature_store=store,
            labels=lab.outputs["labels"],
            scorecard=scorecard,
            library=library,
            sft=sft.outputs["model"],
            reward=rms["midterm"].outputs["model"],
            policy=rls["midterm"].outputs["model"],
        ).set_display_name("loop"),
        gpu,
    )
    ev = on_gpu(
        ops.evaluate(
            tracking=tracking,
            evaluate=evaluate,
            ab=ab,
            register=register,
            features=features,
            label=label,
            reward_model=reward_model,
            sft_policy=sft_policy,
            raw_logs=raw,
            feature_store=store,
            labels=lab.outputs["labels"],
            scorecard=scorecard,
            library=library,
            world=world,
            sft=sft.outputs["model"],
            loop=closed_loop.outputs["model"],
            click_policy=rls["click"].outputs["model"],
        ).set_display_name("evaluate"),
        gpu,
    )
    ev.set_caching_options(False)  # the gate reads the registry's current champion
    reg = ops.register(
        source=source,
        tracking=tracking,
        simulate=simulate,
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
        register=register,
        promote=ev.outputs["promote"],
        loop_models=closed_loop.outputs["model"],
        evaluation=ev.outputs["evaluation"],
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    ).set_display_name("register")
    on_cpu(reg).set_caching_options(False)  # registration is an external write, every run
    return ev


@dsl.pipeline(
    name="encore-training",
    description="Encore: simulate/ingest -> validate -> experiments, features, labels -> signals (scorecard, "
    "learned composite) -> reward models (mid-term, click), SFT -> RLHF (mid-term, click) -> closed loop "
    "(serve, log, relabel, retrain, per round) -> evaluate "
    "(gate on the predicted effect: promote?) -> register (champion only if promote).",
)
def training(
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
    training_dag(**locals())  # every section, by name
