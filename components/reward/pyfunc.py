"""The reward model as an MLflow pyfunc model, with a signature inferred from real rows.

Loaded with ``mlflow.pyfunc.load_model(uri).predict(frame)``: a pandas frame with the
reward-model feature columns in, one reward per row out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import polars as pl


class RewardModelPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from components.reward.model import RewardModel

        self.model = RewardModel.load(context.artifacts["reward_model"], device="cpu")

    def predict(self, context, model_input, params=None):
        return self.model.score_frame(pl.from_pandas(model_input))


def log_reward_model(model_dir: Path, example: pl.DataFrame, name: str) -> Any:
    """Log ``model_dir`` as a pyfunc model in the active run (signature from ``example``); the ModelInfo."""
    from mlflow.models import infer_signature

    from components.mlflow_model import log_pyfunc
    from components.reward.model import RewardModel

    model = RewardModel.load(model_dir, device="cpu")
    # features may be missing (null) at serving time: declare them as doubles, not integers
    numeric = [
        c for c in model.encoder.user_features + model.encoder.candidate_features if c in example.columns
    ]
    example = example.head(16).with_columns([pl.col(c).cast(pl.Float64) for c in numeric])
    signature = infer_signature(example.to_pandas(), model.score_frame(example))
    return log_pyfunc(
        name, RewardModelPyfunc(), {"reward_model": str(model_dir)}, signature, example.head(2).to_pandas()
    )
