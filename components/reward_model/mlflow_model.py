"""The reward model as an MLflow pyfunc model, with a signature inferred from real rows.

Loaded with ``mlflow.pyfunc.load_model(uri).predict(frame)``: a pandas frame with the
reward-model feature columns in, one reward per row out.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import polars as pl

PIP_REQUIREMENTS = ["torch==2.13.0", "transformers==5.24.0", "polars>=2.1,<3", "tokenizers>=0.23,<0.24"]


class RewardModelPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from components.reward_model.model import RewardModel

        self.model = RewardModel.load(context.artifacts["reward_model"], device="cpu")

    def predict(self, context, model_input, params=None):
        return self.model.score_frame(pl.from_pandas(model_input))


def log_reward_model(model_dir: Path, example: pl.DataFrame, name: str) -> None:
    """Log ``model_dir`` as a pyfunc model in the active run (signature from ``example``)."""
    from mlflow.models import infer_signature

    from components.reward_model.model import RewardModel

    model = RewardModel.load(model_dir, device="cpu")
    # features may be missing (null) at serving time: declare them as doubles, not integers
    numeric = [c for c in model.encoder.user_features + model.encoder.candidate_features if c in example.columns]
    example = example.head(16).with_columns([pl.col(c).cast(pl.Float64) for c in numeric])
    signature = infer_signature(example.to_pandas(), model.score_frame(example))
    mlflow.pyfunc.log_model(
        name=name,
        python_model=RewardModelPyfunc(),
        artifacts={"reward_model": str(model_dir)},
        signature=signature,
        input_example=example.head(2).to_pandas(),
        pip_requirements=PIP_REQUIREMENTS,
    )
