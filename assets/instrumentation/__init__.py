"""Automatic instrumentation (Arranger, thesis ch. 4): part-labelled notes, baselines, part-separation models, Table 4.2 evaluation and arrangements."""
