"""The MusPy cross-dataset experiment (thesis ch. 2): event sequences, per-dataset and combined language models, and the train-by-test perplexity matrix."""
