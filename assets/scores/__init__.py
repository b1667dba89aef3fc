"""Score datasets (a data source): the dataset registry, score readers and the ingestion of score files into `songs`, `notes` and their rejects, with `dataset_stats`."""
