"""Table 7.1 as the report and the UI print it: cells that do not apply are blank, not nan or 0."""

import pandas as pd

from assets.clipsonic import evaluation as ev
from assets.core.metadata import markdown_table

NAN = float("nan")


def row(model, mode, group, sampler, steps, guidance, similarity):
    return dict(model=model, mode=mode, group=group, sampler=sampler, steps=steps, guidance=guidance, clips=32,
                fad_vggish=NAN, clap_score=NAN, domain_accuracy=0.5, fad_domain=40.0, query_similarity=similarity)  # fmt: skip


def test_reconstruction_rows_leave_the_sampler_cells_blank():
    table = pd.DataFrame([
        row("CLIPSonic-IQ", "iq", "main", "ddim", 50, 2.0, 1.0),
        row("Reconstruction (vocoder)", "reconstruction", "reconstruction", "", 0, NAN, NAN),
        row("CLIPSonic-IQ", "iq", "sweep", "ddim", 50, 4.0, 1.0),
    ])  # fmt: skip
    lines = markdown_table(ev.table_7_1(table)).splitlines()
    assert lines[0] == ("| Model | Sampler | Steps | w | Clips | Queried instrument (domain) ↑ | FAD (domain) ↓ "
                        "| Query–image cosine ↑ |")  # the metrics nobody measured are left out
    assert lines[2:] == ["| CLIPSonic-IQ | ddim | 50 | 2 | 32 | 0.5 | 40 | 1 |",
                         "| Reconstruction (vocoder) |  |  |  | 32 | 0.5 | 40 |  |"]  # fmt: skip
