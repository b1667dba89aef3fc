"""CLIPSonic-SD's diffusion prior: a CLIP text embedding in, a CLIP image embedding out.

CLIPSonic learns to generate audio from the CLIP image embeddings of video frames; CLIPSonic-ZS
queries it with a text embedding instead, across the modality gap between CLIP's text and image
embeddings. CLIPSonic-SD closes that gap with DALL-E 2's prior, trained on the data set's own label
texts ("a photo of [label]") paired with the image embeddings of that label's frames. The network
is diffusers' ``PriorTransformer``: a causal transformer over [text tokens, text embedding, step
embedding, noised image embedding, final token] whose final token predicts the clean image
embedding. Image embeddings are diffused in units of the training set's per-dimension mean and
standard deviation (the transformer's ``clip_mean``/``clip_std``, saved with its weights, never
trained) and mapped back to unit norm when sampled.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from diffusers import DDPMScheduler, PriorTransformer
from torch import nn
from torch.nn import functional as F

from models.checkpoints import load_model_dir, read_model_config, save_model_dir, seed_everything
from models.clip_embed import ClipBundle, encode_text_tokens
from models.clipsonic.prior_config import PriorConfig
from models.training import FitResult, LoopConfig, default_device, fit, model_device, to_device

EXTRA_TOKENS = 4  # text embedding, step embedding, noised image embedding, final token


class PriorInputMismatch(ValueError):
    """Text features whose shape the prior was not built for (another CLIP's tokens or embeddings)."""


class ClipSonicPrior(nn.Module):
    """A ``PriorTransformer`` over CLIP text features, with a linear map of the token width to the
    embedding width where the text encoder's width differs (the built-in small CLIP's is 64)."""

    def __init__(self, cfg: PriorConfig, token_dim: int) -> None:
        super().__init__()
        self.cfg, self.token_dim = cfg, token_dim
        self.token_proj = nn.Linear(token_dim, cfg.embed_dim) if token_dim != cfg.embed_dim else nn.Identity()
        self.transformer = PriorTransformer(
            num_attention_heads=cfg.heads,
            attention_head_dim=cfg.head_dim,
            num_layers=cfg.layers,
            embedding_dim=cfg.embed_dim,
            num_embeddings=cfg.n_tokens,
            additional_embeddings=EXTRA_TOKENS,
            dropout=cfg.dropout,
            norm_in_type="layer",
            embedding_proj_norm_type="layer",  # unit-norm text embeddings have entries near 1/sqrt(512)
            added_emb_type="prd",
        )
        # diffusers starts these at zero for loading trained weights; from scratch, small random values
        nn.init.normal_(self.transformer.positional_embedding, std=0.02)
        nn.init.normal_(self.transformer.prd_embedding, std=0.02)
        self.transformer.clip_mean.requires_grad_(False)
        self.transformer.clip_std.requires_grad_(False)
        with torch.no_grad():
            self.transformer.clip_std.fill_(1.0)

    @torch.no_grad()
    def set_stats(self, image_embeds: np.ndarray) -> None:
        """Diffuse in units of these embeddings' per-dimension mean and standard deviation."""
        embeds = torch.from_numpy(np.asarray(image_embeds, dtype=np.float64))
        self.transformer.clip_mean.copy_(embeds.mean(0, keepdim=True))
        self.transformer.clip_std.copy_(embeds.std(0, keepdim=True).clamp_min(1e-6))

    def normalise(self, image_embeds: torch.Tensor) -> torch.Tensor:
        return (image_embeds - self.transformer.clip_mean) / self.transformer.clip_std

    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        text_embeds: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor,
    ) -> torch.Tensor:
        """(batch, embed_dim) predicted clean image embeddings, normalised, of noised ones at ``timesteps``."""
        return self.transformer(
            noisy,
            timesteps,
            proj_embedding=text_embeds,
            encoder_hidden_states=self.token_proj(tokens),
            attention_mask=token_mask,
        ).predicted_image_embedding


def build_prior(cfg: PriorConfig, token_dim: int) -> ClipSonicPrior:
    return ClipSonicPrior(cfg, token_dim)


def prior_schedule(cfg: PriorConfig) -> DDPMScheduler:
    """DALL-E 2's cosine schedule; the network predicts the clean embedding, and 64-step sampling spaces
    the steps evenly from the last to the first as unCLIP does."""
    return DDPMScheduler(
        num_train_timesteps=cfg.train_steps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="sample",
        variance_type="fixed_small_log",
        clip_sample=True,
        clip_sample_range=cfg.clip_range,
        timestep_spacing="linspace",
    )


@dataclass
class PriorSet:
    """Texts with their candidate targets: text i and the (k_i, 512) CLIP image embeddings it pairs with."""

    tokens: np.ndarray  # (n, T, token_dim) float32, encode_text_tokens' last hidden states
    token_mask: np.ndarray  # (n, T) bool
    text_embeds: np.ndarray  # (n, 512) float32 unit-norm
    image_embeds: list[np.ndarray]  # n arrays (k_i, 512) float32 unit-norm

    def __len__(self) -> int:
        return len(self.text_embeds)


def make_prior_set(bundle: ClipBundle, texts: Sequence[str], image_embeds: Sequence[np.ndarray]) -> PriorSet:
    """The :class:`PriorSet` of ``texts`` (such as "a photo of violin") and their image embeddings."""
    tokens, mask, embeds = encode_text_tokens(bundle, texts)
    return PriorSet(tokens, mask, embeds, [np.asarray(images, dtype=np.float32) for images in image_embeds])


def _check_inputs(cfg: PriorConfig, token_dim: int, tokens: np.ndarray, text_embeds: np.ndarray) -> None:
    expected = (cfg.n_tokens, token_dim)
    if tokens.shape[1:] != expected or text_embeds.shape[1:] != (cfg.embed_dim,):
        raise PriorInputMismatch(
            f"the prior reads text tokens {expected} and embeddings ({cfg.embed_dim},) of one CLIP, "
            f"got {tokens.shape[1:]} and {text_embeds.shape[1:]}: encode every text with that CLIP"
        )


def _text_inputs(tokens: np.ndarray, token_mask: np.ndarray, text_embeds: np.ndarray) -> dict[str, torch.Tensor]:
    return {
        "tokens": torch.from_numpy(tokens),
        "mask": torch.from_numpy(token_mask),
        "text": torch.from_numpy(text_embeds),
    }


def _pairs_batch(rows: np.ndarray, images: np.ndarray, rng: np.random.Generator, cfg: PriorConfig) -> dict:
    return {
        "rows": torch.from_numpy(rows.astype(np.int64)),
        "image": torch.from_numpy(images.astype(np.float32)),
        "timesteps": torch.from_numpy(rng.integers(cfg.train_steps, size=len(rows))),
        "noise": torch.from_numpy(rng.standard_normal((len(rows), cfg.embed_dim), dtype=np.float32)),
    }


def prior_batch(data: PriorSet, cfg: PriorConfig, step: int) -> dict[str, torch.Tensor]:
    """Training step ``step``'s batch: texts drawn uniformly, one of each text's targets, steps and noise.

    The generator is seeded by (seed, step), so a resumed run draws what an uninterrupted one would.
    Texts are carried as row indices into ``data``; :func:`prior_loss` gathers their features.
    """
    rng = np.random.default_rng([cfg.seed, step])
    rows = rng.integers(len(data), size=cfg.batch_size)
    images = np.stack([data.image_embeds[i][rng.integers(len(data.image_embeds[i]))] for i in rows])
    return _pairs_batch(rows, images, rng, cfg)


def prior_validation_batches(data: PriorSet, cfg: PriorConfig) -> list[dict[str, torch.Tensor]]:
    """Fixed batches of (text, target, step, noise): every pair of ``data``, or ``n_val_pairs`` of them
    drawn by the seed, so every evaluation scores the same denoising problems."""
    pairs = np.array([(i, j) for i, images in enumerate(data.image_embeds) for j in range(len(images))])
    rng = np.random.default_rng(cfg.seed)
    if len(pairs) > cfg.n_val_pairs:
        pairs = pairs[np.sort(rng.choice(len(pairs), cfg.n_val_pairs, replace=False))]
    images = np.stack([data.image_embeds[i][j] for i, j in pairs])
    batch = _pairs_batch(pairs[:, 0], images, rng, cfg)
    return [{k: v[s : s + cfg.batch_size] for k, v in batch.items()} for s in range(0, len(pairs), cfg.batch_size)]


def prior_loss(
    prior: ClipSonicPrior, data: PriorSet, batch: dict[str, torch.Tensor], schedule: DDPMScheduler
) -> torch.Tensor:
    """MSE between the clean normalised image embeddings and the prior's prediction of them from their
    noised versions (DALL-E 2's objective)."""
    device = model_device(prior)
    rows = batch["rows"].numpy()
    text = to_device(_text_inputs(data.tokens[rows], data.token_mask[rows], data.text_embeds[rows]), device)
    batch = to_device(batch, device)
    clean = prior.normalise(batch["image"])
    noisy = schedule.add_noise(clean, batch["noise"], batch["timesteps"])
    predicted = prior(noisy, batch["timesteps"], text["text"], text["tokens"], text["mask"])
    return F.mse_loss(predicted.float(), clean)


@torch.no_grad()
def validate_prior(prior: ClipSonicPrior, data: PriorSet, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """``val_loss``: :func:`prior_loss` over the fixed validation batches, weighted by their size."""
    schedule = prior_schedule(prior.cfg)
    total = sum(prior_loss(prior, data, b, schedule).item() * len(b["rows"]) for b in batches)
    return {"val_loss": total / sum(len(b["rows"]) for b in batches)}


def train_prior(
    cfg: PriorConfig,
    train: PriorSet,
    valid: PriorSet,
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[ClipSonicPrior, FitResult]:
    """Train with AdamW and early stopping on ``val_loss``; the returned prior carries the best weights.

    The normalisation statistics are the training targets'. Resumes from ``ckpt_dir/last.pt`` when present.
    """
    token_dim = train.tokens.shape[-1]
    for data in (train, valid):
        _check_inputs(cfg, token_dim, data.tokens, data.text_embeds)
    seed_everything(cfg.seed)
    prior = build_prior(cfg, token_dim)
    prior.set_stats(np.concatenate(train.image_embeds))
    prior = prior.to(device or default_device())
    optimizer = torch.optim.AdamW(
        [p for p in prior.parameters() if p.requires_grad],
        lr=cfg.lr,
        betas=cfg.betas,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
    )
    schedule = prior_schedule(cfg)
    val_batches = prior_validation_batches(valid, cfg)
    result = fit(
        prior,
        optimizer,
        (prior_batch(train, cfg, step) for step in itertools.count()),
        lambda m, batch: prior_loss(m, train, batch, schedule),
        lambda m: validate_prior(m, valid, val_batches),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience),
        log,
        progress=progress,
        desc="clipsonic prior",
    )
    return prior, result


@torch.no_grad()
def sample_prior_candidates(
    prior: ClipSonicPrior,
    tokens: np.ndarray,
    token_mask: np.ndarray,
    text_embeds: np.ndarray,
    steps: int = 64,
    n_samples: int = 2,
    seed: int = 0,
    batch_size: int = 256,
) -> np.ndarray:
    """(n, n_samples, 512) unit-norm image embeddings sampled for each text by ``steps``-step DDPM."""
    _check_inputs(prior.cfg, prior.token_dim, tokens, text_embeds)
    device = model_device(prior)
    schedule = prior_schedule(prior.cfg)
    schedule.set_timesteps(steps)
    generator = torch.Generator().manual_seed(seed)
    out = np.zeros((len(text_embeds), n_samples, prior.cfg.embed_dim), dtype=np.float32)
    for start in range(0, len(text_embeds), batch_size):
        rows = slice(start, start + batch_size)
        text = _text_inputs(tokens[rows], token_mask[rows], text_embeds[rows])
        text = to_device({k: v.repeat_interleave(n_samples, dim=0) for k, v in text.items()}, device)
        latents = torch.randn(len(text["text"]), prior.cfg.embed_dim, generator=generator).to(device)
        for t in schedule.timesteps:
            predicted = prior(latents, t, text["text"], text["tokens"], text["mask"])
            latents = schedule.step(predicted, t, latents, generator=generator).prev_sample
        embeds = F.normalize(prior.transformer.post_process_latents(latents), dim=-1)
        out[rows] = embeds.view(-1, n_samples, prior.cfg.embed_dim).cpu().numpy()
    return out


def pick_closest(candidates: np.ndarray, text_embeds: np.ndarray) -> np.ndarray:
    """(n, d): of each text's (k, d) unit-norm candidates, the one of highest cosine to its text embedding."""
    best = np.einsum("nkd,nd->nk", candidates, text_embeds).argmax(axis=1)
    return candidates[np.arange(len(candidates)), best]


def sample_prior(
    prior: ClipSonicPrior,
    tokens: np.ndarray,
    token_mask: np.ndarray,
    text_embeds: np.ndarray,
    steps: int = 64,
    n_samples: int = 2,
    seed: int = 0,
    batch_size: int = 256,
) -> np.ndarray:
    """(n, 512) unit-norm image embeddings for the texts: of ``n_samples`` samples each, the one
    closest to the text embedding, as DALL-E 2 does."""
    candidates = sample_prior_candidates(prior, tokens, token_mask, text_embeds, steps, n_samples, seed, batch_size)
    return pick_closest(candidates, text_embeds)


def save_prior(prior: ClipSonicPrior, cfg: PriorConfig, out_dir: str) -> None:
    """The registered layout; the normalisation statistics travel in the weights."""
    save_model_dir(out_dir, prior, asdict(cfg) | {"token_dim": prior.token_dim})


def load_prior(out_dir: str, device: torch.device | str | None = None) -> tuple[ClipSonicPrior, PriorConfig]:
    """Rebuild a prior saved by :func:`save_prior`, in eval mode on ``device``."""
    config = read_model_config(out_dir)
    token_dim = config.pop("token_dim")
    cfg = PriorConfig(**config | {"betas": tuple(config["betas"])})  # JSON has no tuples
    return load_model_dir(out_dir, build_prior(cfg, token_dim), device or default_device()), cfg
