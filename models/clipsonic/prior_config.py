"""Hyperparameters of CLIPSonic-SD's diffusion prior: the paper's, a smoke test's and a CPU demo's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PriorConfig:
    """DALL-E 2's diffusion prior (Ramesh et al., 2022, appendix C) as the thesis uses it (§7.3).

    Stated by the thesis: a causal transformer over the text tokens, the text embedding, the
    diffusion step, the noised image embedding and a final token whose output is the prediction of
    the clean image embedding; a cosine noise schedule of ``train_steps`` = 1000 steps; 64 sampling
    steps; two samples per text, keeping the one closer to the text embedding.

    Taken from DALL-E 2's prior: AdamW with ``lr`` 1.1e-4, betas (0.9, 0.96), eps 1e-10 and weight
    decay 6e-2. Assumed: the widths, DALL-E 2's 2048-wide, 24-layer transformer for 1024-d CLIP
    embeddings halved in width and depth for ViT-B/32's 512-d embeddings (``heads`` x ``head_dim``
    = 1024, 12 layers); ``batch_size``, the step counts and early stopping (a label-text data set is
    far smaller than DALL-E 2's); ``clip_range``, the bound on the predicted clean embedding in
    normalised units while sampling; no EMA of the weights.
    """

    embed_dim: int = 512  # CLIP's joint embedding (ViT-B/32)
    n_tokens: int = 77  # CLIP's text context length: the token sequence the prior reads
    heads: int = 16
    head_dim: int = 64
    layers: int = 12
    dropout: float = 0.0
    train_steps: int = 1000  # diffusion steps of the cosine schedule
    clip_range: float = 10.0
    batch_size: int = 256
    lr: float = 1.1e-4
    betas: tuple[float, float] = (0.9, 0.96)
    eps: float = 1e-10
    weight_decay: float = 6e-2
    max_steps: int = 100_000
    eval_every: int = 2_000
    checkpoint_every: int = 2_000
    patience: int = 10
    n_val_pairs: int = 1024  # (text, image) pairs of the valid set scored by val_loss, drawn once by seed
    seed: int = 0


PRIOR_PROFILES = {
    "paper": PriorConfig(),
    "smoke": PriorConfig(
        heads=2, head_dim=16, layers=2, batch_size=32, lr=2e-3, weight_decay=0.0, max_steps=150, eval_every=50,
        checkpoint_every=50, patience=3, n_val_pairs=64,
    ),
    # the demo's synthetic instrument labels on a 2-core CPU: minutes, not days
    "demo": PriorConfig(
        heads=4, head_dim=16, layers=3, batch_size=32, lr=1e-3, weight_decay=1e-2, max_steps=1_000, eval_every=200,
        checkpoint_every=200, patience=3, n_val_pairs=256,
    ),
}  # fmt: skip
