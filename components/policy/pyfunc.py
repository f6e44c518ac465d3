"""The generative policy as an MLflow pyfunc model: contexts in, slates out.

Input: a pandas frame with the prompt features and ``history`` (recent track ids, most
recent last); output: one list of k track ids per row (greedy, constrained decoding).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl


class PolicyPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from components.policy.model import load

        self.model, _, self.vocab = load(context.artifacts["policy"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        from components.policy.decoding import generate_slates
        from components.sequences import right_aligned

        frame = pl.from_pandas(model_input)
        prompts = self.vocab.prompts(
            frame.select(self.vocab.features), right_aligned(frame["history"], self.vocab.history_length)
        )
        return generate_slates(self.model, self.vocab, prompts, sample=False).tolist()


def log_policy(policy_dir: Path, name: str) -> Any:
    """Log ``policy_dir`` as a pyfunc model in the active run (signature from an example); the ModelInfo."""
    from mlflow.models import infer_signature

    from components.mlflow_model import log_pyfunc
    from components.policy.vocab import ItemVocab

    vocab = ItemVocab.load(policy_dir)
    example = pd.DataFrame(
        {**{f: [1.0, 3.0] for f in vocab.features}, "history": [vocab.track_ids[:5], vocab.track_ids[5:12]]}
    )
    slates = np.array([vocab.track_ids[20 : 20 + vocab.slate_size]] * 2)
    return log_pyfunc(
        name, PolicyPyfunc(), {"policy": str(policy_dir)}, infer_signature(example, slates), example
    )
