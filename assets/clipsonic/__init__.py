"""CLIPSonic on the video lineage (thesis ch. 7): mel crops paired with frame embeddings, the diffusion
models, prior, vocoder and domain classifier, the samples of every query mode and Table 7.1/7.2.

- :mod:`~assets.clipsonic.crops`: 2 s log-mel crops with their video's frame embeddings;
- :mod:`~assets.clipsonic.queries`: the test queries of each mode and their ground truth;
- :mod:`~assets.clipsonic.sampling`: queries to generated mels, one samples table;
- :mod:`~assets.clipsonic.evaluation`: the metrics on audio, the tables and plots;
- :mod:`~assets.clipsonic.registry`: the registered models read, and the promotions;
- :mod:`~assets.clipsonic.defs`: the Dagster assets.
"""
