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
    n_genres: int = Field(gt=1)
    n_artists: int = Field(gt=1)
    n_tracks: int = Field(gt=1)
    latent_dim: int = Field(gt=1, description="dimension of the taste space")
    artist_spread: float = Field(ge=0, description="noise of artist vectors around their genre")
    track_spread: float = Field(ge=0, description="noise of track vectors around their artist")
    artist_popularity_sigma: float = Field(ge=0, description="lognormal sigma: heavy tail")
    track_popularity_sigma: float = Field(ge=0)
    catchiness_depth_corr: float = Field(ge=-1, le=1, description="mildly negative by design")
    mean_duration_s: float = Field(gt=30)

    @model_validator(mode="after")
    def _enough_tracks(self) -> "CatalogueParams":
        if self.n_tracks < self.n_artists or self.n_artists < self.n_genres:
            raise ValueError("need n_tracks >= n_artists >= n_genres")
        return self


class PopulationParams(Section):
    n_users: int = Field(gt=0)
    genre_concentration: float = Field(gt=0, description="Dirichlet alpha of genre mixtures")
    taste_noise: float = Field(ge=0)
    activity_mean: float = Field(description="logit of the base daily activity probability")
    activity_sd: float = Field(ge=0)
    openness_alpha: float = Field(gt=0)
    openness_beta: float = Field(gt=0)
    new_user_fraction: float = Field(ge=0, le=1, description="users who sign up during the log")


class DynamicsParams(Section):
    position_decay: float = Field(ge=0, description="examination prob of slot j = (1+j)^-decay")
    extra_session_prob: float = Field(ge=0, le=1)
    stream_bias: float
    stream_affinity: float
    stream_catchiness: float
    stream_habit: float
    stream_fatigue: float
    stream_popularity: float
    value_bias: float
    value_affinity: float
    value_depth: float
    value_fatigue: float
    skip_cost: float = Field(ge=0)
    save_bias: float
    save_value: float
    satisfaction_decay: float = Field(ge=0, le=1)
    satisfaction_gain: float = Field(ge=0)
    activity_satisfaction: float
    activity_habit: float
    habit_gain: float = Field(ge=0, le=1)
    habit_decay: float = Field(ge=0, le=1)
    habit_enjoy_threshold: float
    habit_formed: float = Field(gt=0, le=1)
    fatigue_gain: float = Field(ge=0)
    fatigue_decay: float = Field(ge=0, le=1)
    organic_rate: float = Field(ge=0, description="organic plays per day per unit of habit")
    search_rate: float = Field(ge=0, description="search plays per active day")
    churn_bias: float
    churn_satisfaction: float
    history_length: int = Field(gt=0, description="recent plays kept as the policy's context")


class LoggingPolicyParams(Section):
    policy_id: int = Field(ge=0)
    pool_size: int = Field(gt=0, description="candidates retrieved per user before ranking")
    taste_noise: float = Field(ge=0, description="error of the production taste estimate")
    affinity_weight: float
    popularity_weight: float
    temperature: float = Field(gt=0)
    exploration: float = Field(ge=0, lt=1, description="prob. a slot is filled uniformly at random")


class OracleParams(Section):
    habit_weight: float = Field(
        ge=0, description="long-term oracle: value of moving a habit towards formation"
    )


class SimulateParams(Section):
    seed: int
    start_date: Annotated[date, Strict(False)] = Field(description="first logged day (UTC)")
    warmup_days: int = Field(ge=0, description="days simulated before logging starts")
    days: int = Field(gt=0)
    slate_size: int = Field(gt=0)
    max_sessions_per_day: int = Field(gt=0)
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
    seed: int
    horizon_days: int = Field(gt=0)
    n_users: int = Field(ge=0, description="users per arm; 0 = the whole live population")
    confidence: float = Field(gt=0, lt=1)
    lm_decoding: Literal["greedy", "sample"] = Field(description="how generative policies pick slates when served")
    lm_temperature: float = Field(gt=0)


# --------------------------------------------------------------------------- validate


class ValidateParams(Section):
    daily_volume_min_ratio: float = Field(
        gt=0, le=1, description="a day's impressions must be >= this x the median day"
    )
    daily_volume_max_ratio: float = Field(ge=1)
    max_ms_played: int = Field(gt=0)
    max_slate_size: int = Field(gt=0)


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
    streamed: float
    saved: float
    skipped: float
    active_days_7d: float = Field(description="per day of the 7 (the label is divided by 7)")
    artist_return_14d: float
    surrogate_active_days_28d: float = Field(description="per day of the 28 (divided by 28)")


class SurrogateParams(Section):
    train_fraction: float = Field(
        gt=0, lt=1, description="share of the uncensored days (oldest first) the index is fitted on"
    )
    max_train_rows: int = Field(gt=0, description="subsample for fitting (rows)")
    seed: int


class LabelParams(Section):
    active_horizon_days: int = Field(gt=0, description="active_days_7d counts days in (t, t+h]")
    artist_return_horizon_days: int = Field(gt=0)
    artist_return_min_days: int = Field(gt=0, description="distinct later days with that artist")
    retention_horizon_days: int = Field(gt=0, description="retained: active in the last week before t+h")
    retention_window_days: int = Field(gt=0)
    attribution: Literal["equal", "split", "streamed", "position"] = Field(
        description="how a session-level outcome is shared by the session's impressions"
    )
    position_decay: float = Field(ge=0, description="for attribution 'position': weight (1+pos)^-decay")
    surrogate: SurrogateParams
    composite: CompositeWeights

    @model_validator(mode="after")
    def _horizons(self) -> "LabelParams":
        if self.retention_window_days > self.retention_horizon_days:
            raise ValueError("retention_window_days must be <= retention_horizon_days")
        if self.active_horizon_days > self.retention_horizon_days:
            raise ValueError("the short (surrogate input) horizon must be <= the retention horizon")
        return self


# --------------------------------------------------------------------------- reward model


class TransformerParams(Section):
    hidden_size: int = Field(gt=0)
    layers: int = Field(gt=0)
    heads: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide(self) -> "TransformerParams":
        if self.hidden_size % self.heads:
            raise ValueError("hidden_size must be divisible by heads")
        return self


class TrainParams(Section):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    warmup_fraction: float = Field(ge=0, lt=1)
    eval_every: int = Field(gt=0, description="steps between evaluations on the held-out sample")


class RewardTargets(Section):
    midterm: str = Field(description="label column the mid-term reward model learns (the composite)")
    click: str = Field(description="label column of the click ablation")


class RewardModelParams(Section):
    seed: int
    targets: RewardTargets
    objective: Literal["pointwise", "pairwise"] = Field(
        description="pointwise regression/BCE, or Bradley-Terry pairs (TRL RewardTrainer)"
    )
    test_user_fraction: float = Field(gt=0, lt=1, description="users held out entirely for testing")
    split_day_fraction: float = Field(gt=0, lt=1, description="train on days before this share of the labelled days")
    max_train_examples: int = Field(gt=0)
    max_test_examples: int = Field(gt=0)
    max_pairs: int = Field(gt=0, description="pairwise objective: training pairs (same session, different outcome)")
    n_buckets: int = Field(gt=1, description="quantile buckets per numeric feature")
    history_length: int = Field(gt=0, description="recent tracks in the context (<= features.history_length)")
    model: TransformerParams
    train: TrainParams


# --------------------------------------------------------------------------- generative policy


class CausalLMParams(Section):
    n_embd: int = Field(gt=0)
    n_layer: int = Field(gt=0)
    n_head: int = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)


class SFTParams(Section):
    seed: int
    base_model: str = Field(
        description="'' builds a small GPT-2 from `model`; else a local Hugging Face causal-LM checkpoint "
        "directory whose vocabulary is extended with the item tokens"
    )
    slate_size: int = Field(gt=0, description="tracks per generated slate (the completion length)")
    history_length: int = Field(gt=0, description="recent plays in the prompt")
    prompt_features: list[str] = Field(description="user_activity features bucketed into the prompt")
    feature_buckets: int = Field(gt=1)
    test_user_fraction: float = Field(gt=0, lt=1)
    max_train_sequences: int = Field(gt=0)
    max_eval_prompts: int = Field(gt=0)
    model: CausalLMParams
    train: TrainParams


class RLHFParams(Section):
    seed: int
    beta: float = Field(ge=0, description="KL penalty to the SFT reference policy")
    learning_rate: float = Field(gt=0)
    max_steps: int = Field(gt=0)
    num_generations: int = Field(gt=1, description="slates sampled per prompt (the GRPO group)")
    prompts_per_step: int = Field(gt=0)
    temperature: float = Field(gt=0)
    checkpoint_every: int = Field(gt=0, description="steps between checkpoints (resume after a kill)")
    n_prompts: int = Field(gt=0, description="listener contexts RL samples its prompts from")
    invalid_slate_reward: float = Field(description="reward of a slate that breaks the constraints (should never happen)")


# --------------------------------------------------------------------------- evaluate / register


class EvaluateParams(Section):
    seed: int
    max_slates: int = Field(gt=0, description="held-out logged slates for off-policy estimates")
    max_weight: float = Field(gt=0, description="importance weights are clipped here (reported)")
    n_bootstrap: int = Field(gt=10)
    ranking_sequences: int = Field(gt=0, description="held-out listeners' next plays for ranking metrics")
    power: float = Field(gt=0, lt=1, description="for A/B planning")


class RegisterParams(Section):
    policy_model: str = Field(description="registered model name of the policy")
    reward_model: str = Field(description="registered model name of the reward model")
    min_lift_lower_bound: float = Field(description="gate: lower CI bound of the DR lift over the champion must exceed this")
    first_min_value_vs_logging: float = Field(
        description="the first champion (no champion yet): its DR value minus the logging policy's must exceed this"
    )
    max_skip_rate: float = Field(gt=0, le=1, description="guardrail: estimated skip rate per slot (SNIPS)")
    min_genre_diversity: float = Field(ge=0, le=1, description="guardrail: distinct genres per slate / k")
    max_kl: float = Field(gt=0, description="guardrail: the RL policy's final KL to its SFT reference")


# --------------------------------------------------------------------------- cluster


class GPUParams(Section):
    accelerator_type: str = Field(description="KFP accelerator type, e.g. nvidia.com/gpu")
    accelerator_limit: int = Field(gt=0, description="GPUs per training task")
    node_selector_key: str = Field(description="node label that marks GPU nodes")
    node_selector_value: str
    toleration_key: str = Field(description="taint GPU nodes carry (tolerated by training pods)")
    toleration_effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
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


# --------------------------------------------------------------------------- all


class Params(Section):
    source: SourceParams
    tracking: TrackingParams
    simulate: SimulateParams
    ab: ABParams
    validate_: ValidateParams = Field(alias="validate")
    features: FeaturesParams
    label: LabelParams
    reward_model: RewardModelParams
    sft_policy: SFTParams
    rlhf_policy: RLHFParams
    evaluate: EvaluateParams
    register_: RegisterParams = Field(alias="register")
    cluster: ClusterParams

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    def section_hash(self, *names: str) -> str:
        """A short, stable hash of some sections (lineage tags, cache keys)."""
        dumped = self.model_dump(mode="json", by_alias=True)
        payload = json.dumps({n: dumped[n] for n in names}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: dict[str, Any] | None = None) -> Params:
    """Load and validate ``params.yaml``; ``overrides`` maps dotted keys to values (tests, CLIs)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: parameters file not found.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level.")
    return params_from_dict(raw, overrides, where=str(path))


def params_from_dict(
    raw: dict[str, Any], overrides: dict[str, Any] | None = None, where: str = "params"
) -> Params:
    """Validate a params mapping (e.g. the dict a KFP run receives) into :class:`Params`."""
    raw = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value, where)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_explain(exc, raw, where)) from None


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


def _explain(exc: ValidationError, raw: dict[str, Any], where: str) -> str:
    lines = [f"{where}: {exc.error_count()} invalid parameter(s):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = _known_keys(err["loc"][:-1])
            hint = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else ""
            lines.append(f"  - {key}: unknown key{tip}")
        elif err["type"] == "missing":
            lines.append(f"  - {key}: missing (every parameter must be set in params.yaml)")
        else:
            lines.append(f"  - {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _known_keys(loc: tuple) -> list[str]:
    """Field names of the section at ``loc`` (for 'did you mean' hints)."""
    model: type[BaseModel] = Params
    for part in loc:
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)), None
        )
        if field is None or not isinstance(field.annotation, type) or not issubclass(
            field.annotation, BaseModel
        ):
            return []
        model = field.annotation
    return [f.alias or n for n, f in model.model_fields.items()]
