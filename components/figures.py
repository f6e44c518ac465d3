"""Figures inlined into the stages' HTML reports, so a report is one self-contained file
(it travels as a KFP HTML artifact or an MLflow artifact without its images getting lost)."""

from __future__ import annotations

import base64
import io


def inline_png(fig, dpi: int = 100) -> str:
    """``fig`` as an ``<img>`` tag with the PNG inlined (base64); closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
