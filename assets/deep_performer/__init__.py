"""The Deep Performer (thesis ch. 5): alignment, synthesis and vocoder models trained on the aligned violin clips, the Table 5.1 evaluation and score-to-audio performance."""
