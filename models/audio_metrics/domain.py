"""The domain backbone: a small CNN that names the synthetic instrument playing in a CLIPSonic log-mel crop.

Generic audio embeddings (VGGish, CLAP) know little of the demo's FluidSynth instruments, so this
classifier, trained on real rendered audio with its labels, gives two in-domain measures of
generated mels: the accuracy of :func:`classify` against the label a mel was generated from, and a
Fréchet distance in the space of its penultimate layer (:func:`domain_embed`). Each crop is
standardised (zero mean, unit variance) before the first layer, so loudness cannot decide the class.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models import mel
from models.checkpoints import load_model_dir, read_model_config, save_model_dir, seed_everything
from models.training import FitResult, LoopConfig, default_device, fit, model_device

SPEC = mel.CLIPSONIC
CROP_FRAMES = 64


@dataclass
class DomainConfig:
    width: int = 32  # channels of the first block; doubles per block
    blocks: int = 4  # conv-BN-ReLU-pool blocks over the 64 x 64 crop
    embed_dim: int = 128  # the penultimate layer :func:`domain_embed` returns
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_steps: int = 3_000
    eval_every: int = 250
    checkpoint_every: int = 250
    patience: int = 6
    seed: int = 0


DOMAIN_PROFILES = {
    "paper": DomainConfig(),
    "smoke": DomainConfig(width=8, blocks=3, embed_dim=32, batch_size=16, lr=3e-3, max_steps=40, eval_every=20,
                          checkpoint_every=20, patience=3),
    "demo": DomainConfig(width=16, blocks=4, embed_dim=64, batch_size=32, lr=3e-3, max_steps=150, eval_every=50,
                         checkpoint_every=50, patience=3),
}  # fmt: skip


class DomainClassifier(nn.Module):
    def __init__(self, cfg: DomainConfig, labels: Sequence[str]) -> None:
        super().__init__()
        self.labels = list(labels)
        layers: list[nn.Module] = []
        channels = 1
        for i in range(cfg.blocks):
            width = cfg.width * 2**i
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Linear(channels, cfg.embed_dim), nn.ReLU())
        self.head = nn.Linear(cfg.embed_dim, len(self.labels))

    def embeddings(self, mels: torch.Tensor) -> torch.Tensor:
        """(n, embed_dim) penultimate features of (n, frames, bands) log-mels, each crop standardised."""
        x = mels.float()
        x = (x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
        return self.embed(self.features(x.unsqueeze(1)).mean(dim=(2, 3)))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(n, classes) logits."""
        return self.head(self.embeddings(mels))


def crop_mels(log_mel: np.ndarray, frames: int = CROP_FRAMES, hop: int | None = None) -> np.ndarray:
    """(n, frames, bands) crops of one clip's (T, bands) log-mel every ``hop`` frames (default: no overlap)."""
    hop = hop or frames
    starts = range(0, len(log_mel) - frames + 1, hop)
    if not len(starts):
        return np.zeros((0, frames, log_mel.shape[1]), dtype=log_mel.dtype)
    return np.stack([log_mel[s : s + frames] for s in starts])


def _batches(
    mels: torch.Tensor, targets: torch.Tensor, cfg: DomainConfig
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random batches drawn from (seed, step), so a resumed run sees the same ones."""
    for step in itertools.count():
        index = torch.from_numpy(np.random.default_rng([cfg.seed, step]).integers(len(mels), size=cfg.batch_size))
        yield mels[index], targets[index]


@torch.no_grad()
def _logits(classifier: DomainClassifier, mels: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    device = model_device(classifier)
    parts = [classifier(torch.from_numpy(np.asarray(mels[s : s + batch_size], np.float32)).to(device)).float().cpu()
             for s in range(0, len(mels), batch_size)]  # fmt: skip
    return torch.cat(parts) if parts else torch.zeros(0, len(classifier.labels))


def _targets(classifier: DomainClassifier, labels: Sequence[str]) -> torch.Tensor:
    index = {label: i for i, label in enumerate(classifier.labels)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise ValueError(f"labels {unknown} are not among the training labels {classifier.labels}")
    return torch.tensor([index[label] for label in labels])


def validate(classifier: DomainClassifier, mels: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Cross-entropy (``val_loss``) and accuracy of fixed labelled crops."""
    logits, targets = _logits(classifier, mels), _targets(classifier, labels)
    return {
        "val_loss": F.cross_entropy(logits, targets).item(),
        "val_accuracy": (logits.argmax(dim=1) == targets).float().mean().item(),
    }


def train_domain_classifier(
    cfg: DomainConfig,
    mels: np.ndarray,
    labels: Sequence[str],
    valid_mels: np.ndarray,
    valid_labels: Sequence[str],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[DomainClassifier, FitResult]:
    """Train on (n, 64, 64) labelled crops with AdamW, early-stopping on validation cross-entropy.

    Resumes from ``ckpt_dir/last.pt`` when present; the returned classifier carries the best weights.
    """
    seed_everything(cfg.seed)
    classifier = DomainClassifier(cfg, sorted(set(labels))).to(device or default_device())
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = torch.from_numpy(np.array(mels, dtype=np.float32))  # a copy: Arrow-backed crops are read-only
    targets = _targets(classifier, labels)
    _targets(classifier, valid_labels)  # fail before training, not at the first validation

    def step_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = (t.to(model_device(model)) for t in batch)
        return F.cross_entropy(model(x).float(), y)

    result = fit(
        classifier,
        optimizer,
        _batches(data, targets, cfg),
        step_loss,
        lambda m: validate(m, valid_mels, valid_labels),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience),
        log,
        progress=progress,
        desc="domain classifier",
    )
    return classifier.eval(), result


def classify(classifier: DomainClassifier, mels: np.ndarray) -> list[str]:
    """The most likely instrument of each (64, 64) log-mel crop."""
    return [classifier.labels[i] for i in _logits(classifier.eval(), mels).argmax(dim=1).tolist()]


@torch.no_grad()
def domain_embed(classifier: DomainClassifier, mels: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, embed_dim) float32 penultimate-layer embeddings, the space of the in-domain Fréchet distance."""
    classifier.eval()
    device = model_device(classifier)
    out = np.zeros((len(mels), classifier.embed[0].out_features), dtype=np.float32)
    for s in range(0, len(mels), batch_size):
        batch = torch.from_numpy(np.asarray(mels[s : s + batch_size], np.float32)).to(device)
        out[s : s + len(batch)] = classifier.embeddings(batch).float().cpu().numpy()
    return out


def save_classifier(classifier: DomainClassifier, cfg: DomainConfig, out_dir: str) -> None:
    save_model_dir(out_dir, classifier, {"config": asdict(cfg), "labels": classifier.labels})


def load_classifier(out_dir: str, device: torch.device | str | None = None) -> tuple[DomainClassifier, DomainConfig]:
    """A classifier saved by :func:`save_classifier`, in eval mode on ``device``."""
    saved = read_model_config(out_dir)
    cfg = DomainConfig(**saved["config"])
    return load_model_dir(out_dir, DomainClassifier(cfg, saved["labels"]), device or default_device()), cfg
