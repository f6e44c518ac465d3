"""``params.yaml`` -> typed, frozen objects. The single source of every parameter.

Each stage reads its own section. Defaults live in ``params.yaml`` only: the models below
have no defaults, so a missing key is an error, and ``extra="forbid"`` turns a typo into an
error that names the key (with a suggestion) instead of a silently ignored setting.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from components.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")


class Section(BaseModel):
    """Base for every params section: no unknown keys, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --------------------------------------------------------------------------- source


class SourceParams(Section):
    kind: Literal["world", "logs"] = Field(
        description="'world' runs the simulator; 'logs' ingests real logs from logs_dir"
    )
    logs_dir: str = Field(description="folder of contract parquet files used when kind is 'logs'")


class TrackingParams(Section):
    uri: str = Field(description="MLflow tracking URI (sqlite:///mlflow.db locally)")
    experiment: str = Field(description="MLflow experiment name")
    enabled: bool = Field(description="log stage runs to MLflow")


# --------------------------------------------------------------------------- the world


class CatalogueParams(Section):
    n_genres: int = Field(gt=1, description="genres in the catalogue")
    n_artists: int = Field(gt=1, description="artists (each belongs to one genre)")
    n_tracks: int = Field(gt=1, description="tracks (each belongs to one artist)")
    latent_dim: int = Field(gt=1, description="dimension of the taste space")
    artist_spread: float = Field(ge=0, description="noise of artist vectors around their genre")
    track_spread: float = Field(ge=0, description="noise of track vectors around their artist")
    artist_popularity_sigma: float = Field(ge=0, description="lognormal sigma: heavy tail")
    track_popularity_sigma: float = Field(
        ge=0, description="lognormal sigma of a track's popularity around its artist's"
    )
    catchiness_depth_corr: float = Field(ge=-1, le=1, description="mildly negative by design")
    mean_duration_s: float = Field(gt=30, description="typical track length in seconds (lognormal)")

    @model_validator(mode="after")
    def _enough_tracks(self) -> "CatalogueParams":
        if self.n_tracks < self.n_artists or self.n_artists < self.n_genres:
            raise ValueError("need n_tracks >= n_artists >= n_genres")
        return self


class PopulationParams(Section):
    n_users: int = Field(gt=0, description="listeners simulated")
    genre_concentration: float = Field(gt=0, description="Dirichlet alpha of genre mixtures")
    taste_noise: float = Field(ge=0, description="spread of a listener's taste around their genre mixture")
    activity_mean: float = Field(description="logit of the base daily activity probability")
    activity_sd: float = Field(ge=0, description="spread of the base activity logit across listeners")
    openness_alpha: float = Field(
        gt=0, description="Beta(alpha, beta) of openness: how fast habits with new artists form"
    )
    openness_beta: float = Field(gt=0, description="Beta(alpha, beta) of openness (see openness_alpha)")
    new_user_fraction: float = Field(ge=0, le=1, description="users who sign up during the log")


class DynamicsParams(Section):
    position_decay: float = Field(ge=0, description="examination prob of slot j = (1+j)^-decay")
    extra_session_prob: float = Field(
        ge=0, le=1, description="chance of each further session on an active day"
    )
    stream_bias: float = Field(description="stream logit: intercept")
    stream_affinity: float = Field(description="stream logit: weight of taste-track affinity")
    stream_catchiness: float = Field(description="stream logit: weight of catchiness (immediate appeal)")
    stream_habit: float = Field(description="stream logit: weight of the listener's habit with the artist")
    stream_fatigue: float = Field(description="stream logit: penalty per unit of genre fatigue")
    stream_popularity: float = Field(description="stream logit: weight of the track's log popularity")
    value_bias: float = Field(description="experienced value of a stream: intercept")
    value_affinity: float = Field(description="experienced value: weight of affinity")
    value_depth: float = Field(description="experienced value: weight of depth (lasting value)")
    value_fatigue: float = Field(description="experienced value: penalty per unit of genre fatigue")
    skip_cost: float = Field(ge=0, description="satisfaction lost per skipped track")
    save_bias: float = Field(description="save logit: intercept")
    save_value: float = Field(description="save logit: weight of the experienced value")
    satisfaction_decay: float = Field(
        ge=0, le=1, description="share of yesterday's satisfaction kept each day"
    )
    satisfaction_gain: float = Field(
        ge=0, description="satisfaction gained per unit of the day's experienced value"
    )
    activity_satisfaction: float = Field(description="daily activity logit: weight of satisfaction")
    activity_habit: float = Field(description="daily activity logit: weight of the sum of habits")
    habit_gain: float = Field(
        ge=0, le=1, description="habit step towards 1 on a day the artist was enjoyed (times 1 + openness)"
    )
    habit_decay: float = Field(ge=0, le=1, description="share of a habit kept each day")
    habit_enjoy_threshold: float = Field(description="experienced value above which a play builds a habit")
    habit_formed: float = Field(
        gt=0, le=1, description="habit strength that counts as a formed habit (outcomes, oracle)"
    )
    fatigue_gain: float = Field(ge=0, description="genre fatigue added per play of the genre")
    fatigue_decay: float = Field(ge=0, le=1, description="share of genre fatigue kept each day")
    artist_fatigue_gain: float = Field(
        ge=0,
        description="artist fatigue added per play of the artist, felt on top of genre fatigue "
        "(stream_fatigue, value_fatigue); 0 = none (repeating one artist wears only its genre out)",
    )
    artist_fatigue_decay: float = Field(ge=0, le=1, description="share of artist fatigue kept each day")
    organic_rate: float = Field(ge=0, description="organic plays per day per unit of habit")
    search_rate: float = Field(ge=0, description="search plays per active day")
    churn_bias: float = Field(description="daily churn logit: intercept")
    churn_satisfaction: float = Field(description="daily churn logit: reduction per unit of satisfaction")
    history_length: int = Field(gt=0, description="recent plays kept as the policy's context")


class LoggingPolicyParams(Section):
    policy_id: int = Field(ge=0, description="policy_id written on the logging policy's impressions")
    pool_size: int = Field(gt=0, description="candidates retrieved per user before ranking")
    taste_noise: float = Field(ge=0, description="error of the production taste estimate")
    affinity_weight: float = Field(description="ranking score: weight of the (noisy) estimated affinity")
    popularity_weight: float = Field(description="ranking score: weight of log popularity")
    temperature: float = Field(
        gt=0, description="softmax temperature of the Plackett-Luce sampling over the pool"
    )
    exploration: float = Field(ge=0, lt=1, description="prob. a slot is filled uniformly at random")


class OracleParams(Section):
    habit_weight: float = Field(
        ge=0, description="long-term oracle: value of moving a habit towards formation"
    )


class SimulateParams(Section):
    seed: int = Field(description="seed of every random stream in the world (catalogue, listeners, days)")
    start_date: Annotated[date, Strict(False)] = Field(description="first logged day (UTC)")
    warmup_days: int = Field(ge=0, description="days simulated before logging starts")
    days: int = Field(gt=0, description="logged days after the warm-up")
    slate_size: int = Field(gt=0, description="tracks per slate (k)")
    max_sessions_per_day: int = Field(gt=0, description="most slates a listener can be shown per day")
    catalogue: CatalogueParams
    users: PopulationParams
    dynamics: DynamicsParams
    logging_policy: LoggingPolicyParams
    oracle: OracleParams

    @model_validator(mode="after")
    def _pool_fits(self) -> "SimulateParams":
        if self.logging_policy.pool_size < self.slate_size:
            raise ValueError("logging_policy.pool_size must be >= slate_size")
        if self.logging_policy.pool_size > self.catalogue.n_tracks:
            raise ValueError("logging_policy.pool_size must be <= catalogue.n_tracks")
        return self


class ABParams(Section):
    seed: int = Field(description="seed of the A/B test's random streams (common to every arm)")
    horizon_days: int = Field(gt=0, description="days each arm runs (the long-term outcome's horizon)")
    n_users: int = Field(ge=0, description="users per arm; 0 = the whole live population")
    confidence: float = Field(
        gt=0, lt=1, description="confidence level of every interval the A/B test reports"
    )
    lm_decoding: Literal["greedy", "sample", "rank"] = Field(
        description="how generative policies pick slates in the A/B test and the off-policy estimates: "
        "greedy (argmax), sample = through the policy service's own sampler (lm_temperature, lm_epsilon), "
        "or rank = generate-then-rank: rank_draws sampled slates ranked by the reward model the policy "
        "was trained against (its ranker/ folder; a policy without one, e.g. SFT, is served greedy)"
    )
    lm_temperature: float = Field(
        gt=0, description="sampling temperature when lm_decoding is 'sample' or 'rank'"
    )
    rank_draws: int = Field(
        ge=1, description="lm_decoding 'rank': slates sampled per request, whose distinct tracks are ranked"
    )
    rank_propensity_draws: int = Field(
        ge=1,
        description="lm_decoding 'rank': fresh candidate sets drawn per context for the Monte-Carlo "
        "probability of a ranked slot given the slots above (off-policy estimates)",
    )
    lm_epsilon: float = Field(
        ge=0,
        lt=1,
        description="lm_decoding 'sample' or 'rank': per slot, a uniform draw among the allowed tracks "
        "with this probability (the service's serve.epsilon)",
    )


# --------------------------------------------------------------------------- validate


class ValidateParams(Section):
    daily_volume_min_ratio: float = Field(
        gt=0, le=1, description="a day's impressions must be >= this x the median day"
    )
    daily_volume_max_ratio: float = Field(
        ge=1, description="a day's impressions must be <= this x the median day"
    )
    max_ms_played: int = Field(gt=0, description="largest plausible ms_played of one play")
    max_slate_size: int = Field(gt=0, description="largest plausible slate (positions per session)")
    min_days: int = Field(gt=0, description="fewest days the log window may span (history + a label horizon)")


# --------------------------------------------------------------------------- features


class FeaturesParams(Section):
    short_window_days: int = Field(gt=0, description="the short rolling window (streams_7d, ...)")
    long_window_days: int = Field(gt=0, description="the long rolling window (streams_28d, ...)")
    history_length: int = Field(gt=0, description="recent track ids kept per user snapshot")
    snapshot_ttl_days: int = Field(gt=0, description="TTL of daily snapshot views (user, track)")
    user_artist_ttl_days: int = Field(gt=0, description="TTL of the sparse user x artist view")
    store: Literal["embedded", "redis", "cluster"] = Field(
        description="embedded: SQLite online store; redis: Redis online store; cluster: the "
        "cluster configuration (SQL registry on PostgreSQL, Redis) read from cluster_config"
    )
    redis_connection: str = Field(description="host:port[,db=N] used when store is redis")
    cluster_config: str = Field(
        description="feature_store.yaml for store=cluster; ${VARS} in it come from the environment"
    )
    project: str = Field(description="Feast project name")

    @model_validator(mode="after")
    def _windows(self) -> "FeaturesParams":
        if self.short_window_days >= self.long_window_days:
            raise ValueError("short_window_days must be < long_window_days")
        return self


# --------------------------------------------------------------------------- label


class CompositeWeights(Section):
    """The hand-set composite (``label.composite.mode: fixed``, and a candidate in the scorecard)."""

    streamed: float = Field(
        description="weight of the stream label (0 keeps the click out of the mid-term reward)"
    )
    saved: float = Field(description="weight of a save")
    skipped: float = Field(description="weight of a skip (negative: a cost)")
    active_days_7d: float = Field(description="per day of the 7 (the label is divided by 7)")
    artist_return_14d: float = Field(
        description="weight of the listener returning to the artist on >= 2 later days in 14"
    )
    surrogate_active_days_28d: float = Field(description="per day of the 28 (divided by 28)")


class CompositeParams(Section):
    mode: Literal["learned", "fixed"] = Field(
        description="learned: non-negative weights fitted on the experiment library (the signals stage); "
        "fixed: the hand-set weights below"
    )
    fixed: CompositeWeights


class SurrogateParams(Section):
    train_fraction: float = Field(
        gt=0, lt=1, description="share of the uncensored days (oldest first) the index is fitted on"
    )
    max_train_rows: int = Field(gt=0, description="subsample for fitting (rows)")
    seed: int = Field(description="seed of the fitting subsample and the model")


class LabelParams(Section):
    active_horizon_days: int = Field(gt=0, description="active_days_7d counts days in (t, t+h]")
    artist_return_horizon_days: int = Field(gt=0, description="artist_return_14d looks at days (t, t+h]")
    artist_return_min_days: int = Field(gt=0, description="distinct later days with that artist")
    retention_horizon_days: int = Field(gt=0, description="retained: active in the last week before t+h")
    retention_window_days: int = Field(
        gt=0, description="retained_28d: active in the last this-many days of the horizon"
    )
    attribution: Literal["equal", "split", "streamed", "position"] = Field(
        description="how a session-level outcome is shared by the session's impressions"
    )
    position_decay: float = Field(ge=0, description="for attribution 'position': weight (1+pos)^-decay")
    min_history_days: int = Field(
        ge=0, description="discovery and repetition signals need this many logged days before the impression"
    )
    surrogate: SurrogateParams
    composite: CompositeParams

    @model_validator(mode="after")
    def _horizons(self) -> "LabelParams":
        if self.retention_window_days > self.retention_horizon_days:
            raise ValueError("retention_window_days must be <= retention_horizon_days")
        if self.active_horizon_days > self.retention_horizon_days:
            raise ValueError("the short (surrogate input) horizon must be <= the retention horizon")
        return self


# --------------------------------------------------------------------------- experiments and signals


class ArmParams(Section):
    """One treatment arm of the simulated experiment library: a variant of the logging policy.

    ``kind`` logging: the logging policy with some knobs changed; ctr_model: ranks by a noisy
    estimate of immediate appeal too (what a click-trained model learns); repeat: favours the
    listener's own recent tracks and artists; discovery: favours artists the listener has not
    played recently. Knobs left out (null) keep the logging policy's value.
    """

    policy_id: int = Field(ge=1, description="the arm's policy_id in the library logs")
    name: str = Field(description="short name shown in reports")
    kind: Literal["logging", "ctr_model", "repeat", "discovery"] = Field(description="what kind of variant")
    strength: float = Field(
        ge=0, description="ctr_model/repeat/discovery: weight of the arm's own term (0 for logging)"
    )
    affinity_weight: float | None = Field(
        default=None, description="override of logging_policy.affinity_weight"
    )
    popularity_weight: float | None = Field(
        default=None, description="override of logging_policy.popularity_weight"
    )
    temperature: float | None = Field(
        default=None, gt=0, description="override of logging_policy.temperature"
    )
    exploration: float | None = Field(
        default=None, ge=0, lt=1, description="override of logging_policy.exploration"
    )
    pool_size: int | None = Field(default=None, gt=0, description="override of logging_policy.pool_size")
    taste_noise: float | None = Field(
        default=None, ge=0, description="override of logging_policy.taste_noise"
    )


class ExperimentsParams(Section):
    seed: int = Field(
        description="seed of the library's participants and of its A/B days (common to every arm)"
    )
    start_day: int = Field(ge=1, description="the simulated library forks the world on this logged day")
    days: int = Field(gt=0, description="how long each experiment runs (the long-term outcome's horizon)")
    participants: int = Field(
        gt=1, description="listeners in the simulated library, the same ones in every arm"
    )
    max_arm_users: int = Field(
        gt=0, description="real logs: at most this many users per arm are read (seeded)"
    )
    arms: list[ArmParams] = Field(
        description="the simulated library's treatment arms (the control is the logging policy)"
    )

    @model_validator(mode="after")
    def _distinct_arms(self) -> "ExperimentsParams":
        ids = [a.policy_id for a in self.arms]
        if len(set(ids)) != len(ids) or len({a.name for a in self.arms}) != len(ids):
            raise ValueError("arm policy_ids and names must be distinct")
        return self


class SignalsParams(Section):
    seed: int = Field(description="seed of the slate samples the guardrail metrics are measured on")
    signal_days: int = Field(
        gt=0, description="the first days of each experiment that the short-term signals use"
    )
    min_arms: int = Field(
        gt=2, description="fewer treatment arms than this: no validity, the fixed composite is used"
    )
    min_gain_se: float = Field(
        ge=0,
        description="learned composite: a signal joins only if it lowers the leave-one-out squared "
        "error by more than this many standard errors (1 = the one-SE rule)",
    )
    power: float = Field(
        gt=0, lt=1, description="sensitivity: users per arm for this power at the arms' median effect"
    )
    confidence: float = Field(gt=0, lt=1, description="confidence level of the validity intervals")
    composite_scope: Literal["impression", "slate", "listener"] = Field(
        description="the widest scope of signal the learned composite (the per-slot reward) may use: "
        "impression (what the recommendation itself caused: streams, saves, artist returns), slate "
        "(+ the slate around it and past serves), listener (+ the listener's later activity, shared "
        "among a session's slots). The reward model scores one (listener, track) at a time and "
        "learns only what that pair causes; scored on listener-scope signals it ranked random "
        "pairs at Spearman 0.05 with the true long-term value (docs/signals.md)"
    )


# --------------------------------------------------------------------------- reward model


class TransformerParams(Section):
    hidden_size: int = Field(gt=0, description="width of the encoder")
    layers: int = Field(gt=0, description="transformer layers")
    heads: int = Field(gt=0, description="attention heads (must divide hidden_size)")
    intermediate_size: int = Field(gt=0, description="feed-forward width")
    dropout: float = Field(ge=0, lt=1, description="dropout on hidden states and attention")

    @model_validator(mode="after")
    def _heads_divide(self) -> "TransformerParams":
        if self.hidden_size % self.heads:
            raise ValueError("hidden_size must be divisible by heads")
        return self


class TrainParams(Section):
    epochs: int = Field(gt=0, description="passes over the training data")
    batch_size: int = Field(gt=0, description="examples per step (per process)")
    learning_rate: float = Field(gt=0, description="AdamW peak learning rate (linear warm-up and decay)")
    weight_decay: float = Field(ge=0, description="AdamW weight decay")
    warmup_fraction: float = Field(
        ge=0, lt=1, description="share of the steps spent warming the learning rate up"
    )
    eval_every: int = Field(gt=0, description="steps between evaluations on the held-out sample")


class RewardTargets(Section):
    midterm: str = Field(description="label column the mid-term reward model learns (the composite)")
    click: str = Field(description="label column of the click ablation")


class RewardModelParams(Section):
    seed: int = Field(description="seed of the split, the subsamples and the initial weights")
    targets: RewardTargets
    objective: Literal["pointwise", "pairwise"] = Field(
        description="pointwise regression/BCE, or Bradley-Terry pairs (TRL RewardTrainer)"
    )
    test_user_fraction: float = Field(gt=0, lt=1, description="users held out entirely for testing")
    split_day_fraction: float = Field(
        gt=0, lt=1, description="train on days before this share of the labelled days"
    )
    max_train_examples: int = Field(gt=0, description="training impressions (a seeded subsample)")
    max_test_examples: int = Field(gt=0, description="held-out impressions (whole sessions, seeded)")
    max_library_examples: int = Field(
        ge=0, description="training impressions added from the experiment library's arms (0: none)"
    )
    max_pairs: int = Field(
        gt=0, description="pairwise objective: training pairs (same session, different outcome)"
    )
    n_buckets: int = Field(gt=1, description="quantile buckets per numeric feature")
    history_length: int = Field(gt=0, description="recent tracks in the context (<= features.history_length)")
    model: TransformerParams
    train: TrainParams


# --------------------------------------------------------------------------- generative policy


class CausalLMParams(Section):
    n_embd: int = Field(gt=0, description="embedding width of the GPT-2 built from config")
    n_layer: int = Field(gt=0, description="transformer layers")
    n_head: int = Field(gt=0, description="attention heads (must divide n_embd)")
    dropout: float = Field(ge=0, lt=1, description="residual, embedding and attention dropout")


class SFTParams(Section):
    seed: int = Field(description="seed of the split, the subsample and the initial weights")
    base_model: str = Field(
        description="'' builds a small GPT-2 from `model`; else a local Hugging Face causal-LM checkpoint "
        "directory whose vocabulary is extended with the item tokens"
    )
    slate_size: int = Field(gt=0, description="tracks per generated slate (the completion length)")
    history_length: int = Field(gt=0, description="recent plays in the prompt")
    prompt_features: list[str] = Field(description="user_activity features bucketed into the prompt")
    feature_buckets: int = Field(gt=1, description="quantile buckets per prompt feature")
    test_user_fraction: float = Field(
        gt=0, lt=1, description="listeners held out entirely for the ranking metrics"
    )
    max_train_sequences: int = Field(gt=0, description="training sequences (a seeded subsample)")
    max_eval_prompts: int = Field(gt=0, description="held-out prompts scored for Recall/NDCG")
    model: CausalLMParams
    train: TrainParams


class RLHFParams(Section):
    seed: int = Field(description="seed of the prompt sample and of GRPO's sampling")
    beta: float = Field(ge=0, description="KL penalty to the SFT reference policy")
    learning_rate: float = Field(gt=0, description="policy learning rate")
    max_steps: int = Field(gt=0, description="GRPO optimisation steps")
    num_generations: int = Field(gt=1, description="slates sampled per prompt (the GRPO group)")
    prompts_per_step: int = Field(
        gt=0, description="listener contexts per step (each gets num_generations slates)"
    )
    temperature: float = Field(gt=0, description="sampling temperature of the RL rollouts")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        description="GRPO advantage scaling: by each prompt's own reward SD (group), by the batch's "
        "(batch) or none. A reward that differs mostly between listeners, little between slates, "
        "is noise that group scaling blows up to unit size"
    )
    checkpoint_every: int = Field(gt=0, description="steps between checkpoints (resume after a kill)")
    n_prompts: int = Field(gt=0, description="listener contexts RL samples its prompts from")
    invalid_slate_reward: float = Field(
        description="reward of a slate that breaks the constraints (should never happen)"
    )


# --------------------------------------------------------------------------- loop


class LoopParams(Section):
    seed: int = Field(
        description="seed of the served policy's sampling (per day) and of each round's truth run"
    )
    rounds: int = Field(
        ge=0,
        description="closed-loop rounds after the first RL policy (round 0): each serves the current "
        "policy, logs, relabels, retrains the reward model and runs RL again; 0 = no loop",
    )
    days_per_round: int = Field(
        gt=0, description="days a round learns from; the world serves them plus the composite's label lag"
    )
    treatment_share: float = Field(
        gt=0, lt=1, description="share of listeners served the current policy (the rest: the logging policy)"
    )
    experiment_id: int = Field(
        ge=1,
        le=9_007_199_253,
        description="the loop's experiment id: the leading digits of the policy_id its served slates "
        "carry (components.serve.core.policy_id, version = the round)",
    )
    salt: str = Field(min_length=1, description="salt of the treatment assignment (the service's hash)")
    temperature: float = Field(
        ge=0,
        description="sampling temperature of the treatment arm (the service's sampler; 0 = greedy)",
    )
    epsilon: float = Field(
        ge=0,
        lt=1,
        description="per slot, a uniform draw among the allowed tracks with this probability: the "
        "exploration that keeps the next round's off-policy estimates supported",
    )
    served_examples: int = Field(
        ge=0,
        description="reward-model training examples drawn from the slates the loop served (all rounds "
        "so far), on top of the logging policy's: its own neighbourhood, at a weight a uniform sample "
        "of the logs would not give it",
    )
    truth_listeners: int = Field(
        gt=0, description="listeners in each round's on-policy truth run (the off-policy estimates' target)"
    )
    max_slates: int = Field(gt=0, description="served slates per round for the off-policy estimates")
    rl_start: Literal["sft", "last"] = Field(
        description="where each round's RL starts and anchors its KL penalty: 'sft' (every round one "
        "KL-bounded step from the imitation policy) or 'last' (round r - 1's policy: a trust region "
        "around the policy whose served slates the reward model has just learned from)"
    )
    rl_steps: int = Field(gt=0, description="GRPO steps per round (rlhf_policy's other settings apply)")
    rm_warm_start: bool = Field(
        description="each round's reward model starts from the last round's (its encoder kept: the same "
        "buckets and vocabulary) instead of from scratch, so a round needs fewer examples"
    )
    rm_train_examples: int = Field(
        gt=0,
        description="a round's reward-model training impressions from all logs so far (the round's "
        "reward_model.max_train_examples; served_examples and the library's come on top)",
    )


# --------------------------------------------------------------------------- evaluate / register


class EvaluateParams(Section):
    seed: int = Field(description="seed of the held-out sample, the bootstrap and sampled decoding")
    max_slates: int = Field(gt=0, description="held-out logged slates for off-policy estimates")
    max_weight: float = Field(gt=0, description="importance weights are clipped here (reported)")
    n_bootstrap: int = Field(gt=10, description="bootstrap resamples behind every confidence interval")
    ranking_sequences: int = Field(gt=0, description="held-out listeners' next plays for ranking metrics")
    power: float = Field(gt=0, lt=1, description="for A/B planning")
    truth_listeners: int = Field(
        gt=0,
        description="simulation: listeners whose uniformly random tracks check the reward model "
        "against the true long-term value (k tracks each)",
    )


class RegisterParams(Section):
    policy_model: str = Field(description="registered model name of the policy")
    reward_model: str = Field(description="registered model name of the reward model")
    min_lift_lower_bound: float = Field(
        description="gate: lower bound the predicted 28-day active-days effect over the champion must exceed"
    )
    first_min_value_vs_logging: float = Field(
        description="no champion yet: the same lower bound, against the logging policy"
    )
    max_skip_rate: float = Field(gt=0, le=1, description="guardrail: estimated skip rate per slot (SNIPS)")
    min_genre_diversity: float = Field(ge=0, le=1, description="guardrail: distinct genres per slate / k")
    max_kl: float = Field(gt=0, description="guardrail: the RL policy's final KL to its SFT reference")
    min_catalogue_coverage: float = Field(
        ge=0,
        le=1,
        description="guardrail: share of the catalogue in the challenger's slates for held-out listeners",
    )
    min_support: float = Field(
        ge=0,
        description="the challenger's effective sample of the logged slots (its importance weights) must "
        "be at least this share of the imitation policy's: below it, the prediction is an extrapolation",
    )
    min_reward_model_validity: float = Field(
        ge=-1,
        le=1,
        description="the off-policy estimate leans on the reward model: across the library's arms, its "
        "score's Pearson with the arms' active-days effects must stay above this with any one arm left out",
    )
    require_model_free: bool = Field(
        description="the lift must also show in the logged outcomes alone (self-normalised IPS lower "
        "bound above the floor), not only in the reward model's doubly robust prediction"
    )
    max_artist_concentration: float = Field(
        ge=0, le=1, description="guardrail: mean share of a slate taken by its most frequent artist"
    )


# --------------------------------------------------------------------------- serve


class ServeArmParams(Section):
    name: str = Field(min_length=1, description="the arm's name in responses, logs and metrics, e.g. control")
    alias: str = Field(min_length=1, description="registry alias of register.policy_model this arm serves")
    share: float = Field(gt=0, le=1, description="share of listeners assigned to this arm")


class ServeExperimentParams(Section):
    id: int = Field(
        ge=1,
        le=9_007_199_253,
        description="the A/B test's id: the leading digits of every policy_id it logs "
        "(policy_id = id * 10**6 + (arm index + 1) * 10**4 + registered version)",
    )
    salt: str = Field(
        min_length=1, description="salt of the assignment hash: a new salt reshuffles every listener"
    )
    arms: list[ServeArmParams] = Field(
        min_length=1, max_length=98, description="the arms, in order; their shares sum to 1"
    )

    @model_validator(mode="after")
    def _shares(self) -> "ServeExperimentParams":
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"the arms' shares sum to {total}, not 1")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        return self


class ServeBatchParams(Section):
    max_size: int = Field(gt=0, description="most requests decoded in one forward pass")
    max_wait_ms: float = Field(
        ge=0, description="how long a batch's first request waits for others when the model is idle"
    )
    max_queue: int = Field(gt=0, description="requests waiting beyond this are refused with 503")


class ServeLogParams(Section):
    flush_rows: int = Field(gt=0, description="a log part is written once this many rows are buffered")
    flush_seconds: float = Field(gt=0, description="... or once the oldest buffered row is this old")


class ServeParams(Section):
    temperature: float = Field(
        ge=0, description="sampling temperature of the policy when serving; 0 = its argmax (greedy)"
    )
    epsilon: float = Field(
        ge=0, lt=1, description="share of slots filled uniformly among the allowed tracks (exploration)"
    )
    decoding: Literal["sample", "rank"] = Field(
        description="sample = the policy's own slates (temperature, epsilon); rank = generate-then-rank: "
        "rank_draws slates sampled at the temperature, ranked by the reward model the registered policy "
        "carries in ranker/ with features from the online store (a version without one is sampled)"
    )
    rank_draws: int = Field(
        ge=1, description="decoding 'rank': slates sampled per request, their tracks ranked"
    )
    rank_propensity_draws: int = Field(
        ge=1,
        description="decoding 'rank': fresh candidate sets per request for the Monte-Carlo propensity "
        "the service logs (components.sampler.ranked)",
    )
    poll_seconds: float = Field(gt=0, description="how often the registry aliases are checked for a move")
    torch_threads: int = Field(ge=1, description="intra-op threads of the forward pass (per replica)")
    max_history: int = Field(gt=0, description="longest `history` a request may bring (ids)")
    batch: ServeBatchParams
    log: ServeLogParams
    experiment: ServeExperimentParams


# --------------------------------------------------------------------------- cluster


class GPUParams(Section):
    accelerator_type: str = Field(description="KFP accelerator type, e.g. nvidia.com/gpu")
    accelerator_limit: int = Field(gt=0, description="GPUs per training task")
    node_selector_key: str = Field(description="node label that marks GPU nodes")
    node_selector_value: str = Field(description="value of node_selector_key on GPU nodes")
    toleration_key: str = Field(description="taint GPU nodes carry (tolerated by training pods)")
    toleration_effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        description="effect of the GPU nodes' taint"
    )
    shared_memory: str = Field(description="size of the /dev/shm emptyDir for data loaders, e.g. 8Gi")


class ClusterParams(Section):
    """How the compiled pipeline runs on Kubernetes (read at compile time)."""

    image_registry: str = Field(description="registry + repository prefix of Encore's images")
    image_tag: str = Field(description="immutable image tag (never 'latest')")
    namespace: str = Field(description="Kubeflow profile namespace the pipeline runs in")
    gpu: GPUParams

    @model_validator(mode="after")
    def _no_latest(self) -> "ClusterParams":
        if self.image_tag == "latest":
            raise ValueError("image_tag 'latest' is not allowed: pin an immutable tag")
        return self


# --------------------------------------------------------------------------- the robustness suite


class WorldSetting(Section):
    """One world of the robustness suite: the default world with some ``simulate`` keys changed."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="short name (folders, table rows)")
    mechanism: str = Field(description="what differs from the default world and why it matters, in words")
    set: dict[str, float | int | bool | str] = Field(
        description="dotted simulate.* keys and their values in this world; {} = the default world"
    )

    @model_validator(mode="after")
    def _world_keys_only(self) -> "WorldSetting":
        bad = [k for k in self.set if not k.startswith("simulate.") or k == "simulate.seed"]
        if bad:
            raise ValueError(
                f"world '{self.name}' sets {bad}: a world setting changes simulate.* keys only "
                "(the seed comes from robustness.seeds; the pipeline's own parameters stay the defaults)"
            )
        return self


class RobustnessParams(Section):
    """``make robustness``: the whole DAG on several worlds and several realisations of each."""

    seeds: list[int] = Field(
        min_length=1, description="simulate.seed of each realisation: every world runs once per seed"
    )
    worlds: list[WorldSetting] = Field(min_length=2, description="the worlds, the default one among them")
    out_dir: str = Field(description="one DVC workspace per (world, seed) and the suite's table go here")

    @model_validator(mode="after")
    def _unique_names(self) -> "RobustnessParams":
        names = [w.name for w in self.worlds]
        if len(set(names)) != len(names) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"world names {names} and seeds {self.seeds} must each be unique")
        return self


# --------------------------------------------------------------------------- all


class Params(Section):
    source: SourceParams
    tracking: TrackingParams
    simulate: SimulateParams
    ab: ABParams
    validate_: ValidateParams = Field(alias="validate")
    features: FeaturesParams
    label: LabelParams
    experiments: ExperimentsParams
    signals: SignalsParams
    reward_model: RewardModelParams
    sft_policy: SFTParams
    rlhf_policy: RLHFParams
    loop: LoopParams
    evaluate: EvaluateParams
    register_: RegisterParams = Field(alias="register")
    serve: ServeParams
    robustness: RobustnessParams
    cluster: ClusterParams

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _worlds_are_valid_simulate_params(self) -> "Params":
        """Each suite world's keys exist and give valid simulate params (checked at load, not mid-suite)."""
        base = self.simulate.model_dump(mode="json")
        for world in self.robustness.worlds:
            raw = {"simulate": copy.deepcopy(base)}
            for dotted, value in world.set.items():
                _set_dotted(raw, dotted, value, f"robustness world '{world.name}'")
            try:
                SimulateParams.model_validate(raw["simulate"])
            except ValidationError as exc:
                raise ParamsError(
                    _explain(exc, raw["simulate"], f"robustness world '{world.name}'", ("simulate",))
                ) from None
        return self

    def section(self, name: str) -> Section:
        """A section by its name in params.yaml (``validate``, not ``validate_``)."""
        return getattr(self, _FIELD_OF[name])

    def sections_dump(self, *names: str) -> dict[str, Any]:
        """``{name: section as JSON-compatible data}`` for the named sections only."""
        return {n: self.section(n).model_dump(mode="json", by_alias=True) for n in names}

    def section_hash(self, *names: str) -> str:
        """A short, stable hash of some sections (lineage tags, cache keys)."""
        payload = json.dumps(self.sections_dump(*names), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


_FIELD_OF = {(f.alias or n): n for n, f in Params.model_fields.items()}
SECTIONS: tuple[str, ...] = tuple(_FIELD_OF)  # every section, in params.yaml order
# Read when the Kubeflow pipeline is compiled (images, GPU placement), never by a stage at run time.
COMPILE_TIME_SECTIONS = ("cluster",)
# Read by the serving process (python -m components.serve), never by a pipeline stage: editing
# them re-runs nothing and never changes a registered model's fingerprint.
SERVICE_SECTIONS = ("serve",)
# Read by the robustness suite's driver (make robustness), which runs the DAG once per world with
# the default params and that world's simulate keys: never by a stage.
SUITE_SECTIONS = ("robustness",)
RUNTIME_SECTIONS: tuple[str, ...] = tuple(
    s for s in SECTIONS if s not in COMPILE_TIME_SECTIONS + SERVICE_SECTIONS + SUITE_SECTIONS
)
ALWAYS_READ = ("tracking",)  # every stage run opens an MLflow run


class UndeclaredSectionError(RuntimeError):
    """A stage read a params section it does not declare: a bug in the stage, not the user's params."""


class Undeclared:
    """Stands in for a section a stage did not declare: any read of it fails loudly.

    What a stage declares decides what DVC re-runs it for and which Kubeflow inputs it gets
    (so which edits keep its cache); a stage silently reading more would make both wrong.
    """

    def __init__(self, section: str, stage: str, declared: tuple[str, ...]):
        self._section, self._stage, self._declared = section, stage, declared

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        raise UndeclaredSectionError(
            f"stage '{self._stage}' read '{self._section}.{key}' but declares only "
            f"({', '.join(self._declared)}): "
            f"add '{self._section}' to SECTIONS in its package's __init__.py (dvc.yaml's params follow "
            "that list)."
        )

    def __repr__(self) -> str:
        return f"<params section '{self._section}' not declared by stage '{self._stage}'>"


def restrict(params: Params, sections: Sequence[str], stage: str) -> Params:
    """``params`` with only ``sections`` (+ tracking) readable; every other section is :class:`Undeclared`."""
    declared = tuple(dict.fromkeys([*sections, *ALWAYS_READ]))
    unknown = [s for s in declared if s not in _FIELD_OF]
    if unknown:
        raise ValueError(
            f"stage '{stage}' declares unknown params section(s) {unknown}; sections: {SECTIONS}"
        )
    values = {
        _FIELD_OF[name]: getattr(params, _FIELD_OF[name])
        if name in declared
        else Undeclared(name, stage, declared)
        for name in SECTIONS
    }
    return Params.model_construct(**values)


def load_params(
    path: str | Path = DEFAULT_PARAMS,
    overrides: dict[str, Any] | None = None,
    only: Sequence[str] | None = None,
) -> Params:
    """Load and validate ``params.yaml``; ``overrides`` maps dotted keys to values (tests, CLIs).

    With ``only``, a file may hold just those sections (what a Kubeflow task receives); the
    result is :func:`restrict`-ed to them. Every section present is validated either way.
    """
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: parameters file not found.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level.")
    return params_from_dict(raw, overrides, where=str(path), only=only)


def params_from_dict(
    raw: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    where: str = "params",
    only: Sequence[str] | None = None,
    stage: str = "this stage",
) -> Params:
    """Validate a params mapping (e.g. the sections a Kubeflow task receives) into :class:`Params`.

    Without ``only`` every section must be there. With ``only``, those sections (+ tracking)
    must be there, others may be absent, and the result reads only those.
    """
    raw = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value, where)
    if only is None:
        try:
            return Params.model_validate(raw)
        except ValidationError as exc:
            raise ParamsError(_explain(exc, raw, where)) from None
    declared = tuple(dict.fromkeys([*only, *ALWAYS_READ]))
    missing = [s for s in declared if s not in raw]
    if missing:
        raise ParamsError(f"{where}: missing section(s) {', '.join(missing)} (the stage reads them).")
    unknown = [s for s in raw if s not in _FIELD_OF]
    errors = [f"  - {s}: unknown section" + _hint(s, SECTIONS) for s in unknown]
    sections = {}
    for name, value in raw.items():
        if name in unknown:
            continue
        model = Params.model_fields[_FIELD_OF[name]].annotation
        try:
            sections[_FIELD_OF[name]] = model.model_validate(value)
        except ValidationError as exc:
            errors += _explain(exc, value, where, prefix=(name,)).splitlines()[1:]
    if errors:
        raise ParamsError("\n".join([f"{where}: {len(errors)} invalid parameter(s):", *errors]))
    full = Params.model_construct(**{f: sections.get(f) for f in Params.model_fields})
    return restrict(full, declared, stage)


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise ParamsError(f"{where}: override '{dotted}': '{key}' is not a section.")
        node = node[key]
    if leaf not in node:
        raise ParamsError(f"{where}: override '{dotted}': unknown key '{leaf}'.")
    node[leaf] = value


def _explain(exc: ValidationError, raw: dict[str, Any], where: str, prefix: tuple = ()) -> str:
    lines = [f"{where}: {exc.error_count()} invalid parameter(s):"]
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        key = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            lines.append(f"  - {key}: unknown key" + _hint(str(loc[-1]), _known_keys(loc[:-1])))
        elif err["type"] == "missing":
            lines.append(f"  - {key}: missing (every parameter must be set in params.yaml)")
        else:
            lines.append(f"  - {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _hint(name: str, known: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _known_keys(loc: tuple) -> list[str]:
    """Field names of the section at ``loc`` (for 'did you mean' hints)."""
    model: type[BaseModel] = Params
    for part in loc:
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if (
            field is None
            or not isinstance(field.annotation, type)
            or not issubclass(field.annotation, BaseModel)
        ):
            return []
        model = field.annotation
    return [f.alias or n for n, f in model.model_fields.items()]


# --------------------------------------------------------------------------- reference docs

SECTION_HELP = {
    "source": "where the raw logs come from: the simulator, or a folder of real logs",
    "tracking": "MLflow: where every stage run logs its parameters, metrics and models",
    "simulate": "the listening world (catalogue, listeners, daily dynamics, logging policy, oracles)",
    "ab": "the simulated A/B test against the ground truth (evaluation)",
    "validate": "bounds of the Great Expectations checks on the raw logs",
    "features": "feature windows, Feast views and which online store",
    "label": "reward labels: horizons, attribution, the surrogate index and the composite reward",
    "experiments": "the library of past A/B tests (simulated arms, or the experiments table of real logs)",
    "signals": "signal scorecard: each short-term signal's validity across experiments; learned composite",
    "reward_model": "the transformer reward model and its held-out split",
    "sft_policy": "the generative recommender trained by imitation",
    "rlhf_policy": "GRPO fine-tuning against the reward model, KL-anchored to SFT",
    "loop": "the closed loop: serve the policy to a treatment share, log, relabel, retrain, RL again",
    "evaluate": "off-policy estimates, ranking metrics, A/B planning",
    "register": "the MLflow registry names and the promotion gate",
    "serve": "the HTTP service: sampling, exploration, A/B arms, micro-batching, impression logs",
    "robustness": "the robustness suite (make robustness): the whole DAG per world and seed, one table",
    "cluster": "how the compiled Kubeflow pipeline runs on Kubernetes (compile time only)",
}


def _fields(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    """(dotted key, type, description) of every leaf parameter under ``model``."""
    rows = []
    for name, f in model.model_fields.items():
        key = f"{prefix}{f.alias or name}"
        ann = f.annotation
        inner = getattr(ann, "__args__", (None,))[0]
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += _fields(ann, key + ".")
        elif (
            getattr(ann, "__origin__", None) is list
            and isinstance(inner, type)
            and issubclass(inner, BaseModel)
        ):
            rows.append((key, _type_name(ann), f.description or ""))
            rows += _fields(inner, key + "[].")  # each item's keys
        else:
            rows.append((key, _type_name(ann), f.description or ""))
    return rows


def _type_name(ann: Any) -> str:
    """``int``, ``list[str]``, ``'world' or 'logs'`` (Literal), ``date`` (Annotated)."""
    import types
    import typing

    if typing.get_origin(ann) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(ann))
    if typing.get_origin(ann) is Annotated:
        return _type_name(typing.get_args(ann)[0])
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is not None and args:
        if origin in (typing.Union, types.UnionType):
            return " or ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    return "None" if ann is type(None) else getattr(ann, "__name__", str(ann))


def describe(sections: Sequence[str]) -> str:
    """Plain-text reference of some sections (a stage's ``--help`` ends with it)."""
    lines = []
    for section in sections:
        model = Params.model_fields[_FIELD_OF[section]].annotation
        lines.append(f"  {section}: {SECTION_HELP[section]}")
        lines += [f"    {key} ({kind}) - {desc}" for key, kind, desc in _fields(model, f"{section}.")]
    return "\n".join(lines)


def markdown() -> str:
    """``docs/params.md``: every parameter, its type and description (generated; a test keeps it fresh)."""
    out = [
        "# Parameters",
        "",
        "Generated from `components/params.py` by `python -m components.params > docs/params.md`;",
        "`tests/unit/test_params.py` fails when this file is stale. Every key is required and typed;",
        "the defaults live in `params.yaml`. Override one for a single run with `--set SECTION.KEY=VALUE`",
        "on any stage CLI, or for an experiment with `dvc exp run -S SECTION.KEY=VALUE` (see the README).",
        "",
    ]
    for section in SECTIONS:
        model = Params.model_fields[_FIELD_OF[section]].annotation
        out += [
            f"## `{section}`",
            "",
            SECTION_HELP[section][0].upper() + SECTION_HELP[section][1:] + ".",
            "",
            "| key | type | meaning |",
            "|---|---|---|",
        ]
        out += [
            f"| `{key}` | {kind} | {desc.replace('|', '/')} |"
            for key, kind, desc in _fields(model, f"{section}.")
        ]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
