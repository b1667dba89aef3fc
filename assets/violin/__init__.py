"""Violin recordings (a data source): manifests, 16 kHz audio, scores, FluidSynth renders, DTW alignment and the aligned `performance_clips` the Deep Performer trains on."""
