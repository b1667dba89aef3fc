"""Videos (a data source): sources and downloads, ffmpeg audio and frames, CLIP frame embeddings, and the synthetic instrument videos of the demo."""
