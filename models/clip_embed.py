"""CLIP image and text embeddings for the video lineage (CLIPSep, Dong et al., ICLR 2023).

CLIPSep conditions a source-separation model on a CLIP embedding: of a video frame while
training (no text labels needed) and of a text query at test time. Both live in CLIP's joint
space, so every embedding here is L2-normalised: cosine similarity is then a dot product, and
image and text queries are interchangeable inputs to the separator.

Weights come from the Hugging Face cache or a local ``save_pretrained`` folder, always with
``local_files_only=True``: machines running the lineage have no hub access, and a missing
checkpoint must fail fast with instructions rather than hang on a download.

``SMALL_CLIP`` is a built-in, untrained CLIP of the same interface (512-d embeddings like
ViT-B/32) for tests, the smoke profile and machines without the weights. Its weights come from a
fixed seed, so its embeddings are reproducible, but they carry no meaning
(``ClipBundle.semantic`` is False). Its tokenizer is transformers' ``CLIPTokenizer`` over a
byte-level vocabulary without merges (each UTF-8 byte is one token, with CLIP's ``</w>``
end-of-word variants): it needs no vocabulary files, hence no download.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from PIL import Image, ImageOps
from tokenizers import pre_tokenizers
from torch.nn import functional as F
from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from models.training import default_device

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
SMALL_CLIP = "baton/small-clip"
SMALL_SEED = 0
TEMPLATES = (
    "a photo of {}",
    "a photo of the small {}",
    "a low resolution photo of a {}",
    "a photo of many {}",
)
"""CLIPSep's prompt templates; averaging over them makes a query less sensitive to phrasing."""
PRECISIONS: dict[str, torch.dtype | None] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
"""Autocast dtype on CUDA; CPU always runs fp32."""


class ClipWeightsMissing(RuntimeError):
    """The CLIP model or its processor is neither in the given folder nor in the Hugging Face cache."""


@dataclass
class ClipBundle:
    model: CLIPModel
    tokenizer: Any  # a transformers CLIP tokenizer
    image_processor: Any | None  # the checkpoint's own; None: CLIP normalisation of image_size frames
    model_id: str
    semantic: bool  # False for SMALL_CLIP: random weights, embeddings without meaning
    dim: int
    device: torch.device

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)


def small_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer built in memory: 256 bytes, their ``</w>`` forms, then start and end tokens."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {char: i for i, char in enumerate(alphabet)}
    vocab |= {f"{char}</w>": len(alphabet) + i for i, char in enumerate(alphabet)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    return CLIPTokenizer(vocab=vocab, merges=[])


def small_clip_config(vocab_size: int = 514) -> CLIPConfig:
    """ViT-B/32's input and output shapes (224² images, 32² patches, 77 tokens, 512-d) at width 64."""
    width = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = {
        **width,
        "vocab_size": vocab_size,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }
    vision = {**width, "image_size": 224, "patch_size": 32}
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)


def _small_clip() -> tuple[CLIPModel, CLIPTokenizer]:
    tokenizer = small_tokenizer()
    with torch.random.fork_rng(devices=[]):  # a fixed seed without disturbing the caller's RNG
        torch.manual_seed(SMALL_SEED)
        model = CLIPModel(small_clip_config(len(tokenizer)))
    return model, tokenizer


def _is_repo_id(model: str) -> bool:
    try:
        validate_repo_id(model)
    except HFValidationError:
        return False
    return not Path(model).expanduser().is_absolute()


def _missing_message(model: str, error: Exception) -> str:
    tried = [f"the folder {Path(model).expanduser().resolve()}"]
    is_repo = _is_repo_id(model)
    repo = model if is_repo else DEFAULT_MODEL
    if is_repo:
        cached = Path(hub_constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))
        tried.append(f"the Hugging Face cache {cached}")
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"CLIP weights {model!r} could not be loaded offline ({reason}). Tried {' and '.join(tried)}.\n"
        "To provide them, either:\n"
        f"  - on a machine with internet run `huggingface-cli download {repo}` and copy its Hugging Face "
        f"cache ({hub_constants.HF_HUB_CACHE}) to the same place here (or point HF_HUB_CACHE at the copy); or\n"
        f"  - save the model and processor to a folder with `CLIPModel.from_pretrained({repo!r}).save_pretrained(DIR)` "
        f"and `CLIPProcessor.from_pretrained({repo!r}).save_pretrained(DIR)`, copy DIR here and configure "
        "its path as the model; or\n"
        f"  - configure {SMALL_CLIP!r}, a built-in untrained CLIP (not semantic: for tests and smoke runs only)."
    )


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Even with ``local_files_only`` huggingface_hub fetches an agent registry for its user agent
    (a 3 s timeout per process without network); its offline flag stops that too."""
    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def load_clip(model: str = DEFAULT_MODEL, device: str | torch.device | None = None) -> ClipBundle:
    """Load a CLIP model id or ``save_pretrained`` folder offline, or build ``SMALL_CLIP``, in eval mode.

    Raises ``ClipWeightsMissing`` (with how to provide the weights) when either the model or its
    processor cannot be found locally.
    """
    device = torch.device(device) if device is not None else default_device()
    if model == SMALL_CLIP:
        clip, tokenizer = _small_clip()
        image_processor, semantic = None, False
    else:
        try:
            with _hub_offline():
                clip = CLIPModel.from_pretrained(model, local_files_only=True)
                processor = CLIPProcessor.from_pretrained(model, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ClipWeightsMissing(_missing_message(model, error)) from error
        tokenizer, image_processor, semantic = processor.tokenizer, processor.image_processor, True
    clip = clip.to(device).eval().requires_grad_(False)
    return ClipBundle(clip, tokenizer, image_processor, model, semantic, int(clip.config.projection_dim), device)


def decode_frames(jpegs: Sequence[bytes], size: int) -> np.ndarray:
    """(n, size, size, 3) uint8 RGB of JPEG frames, decoded straight into one preallocated array.

    The lineage stores frames already resized and centre-cropped, so only other sizes are refit
    (centre crop to a square, bicubic resize)."""
    pixels = np.empty((len(jpegs), size, size, 3), dtype=np.uint8)
    for i, jpeg in enumerate(jpegs):
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        if image.size != (size, size):
            image = ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
        pixels[i] = np.asarray(image)
    return pixels


_SCALE = (1 / (255 * torch.tensor(OPENAI_CLIP_STD))).view(1, 3, 1, 1)
_SHIFT = (-torch.tensor(OPENAI_CLIP_MEAN) / torch.tensor(OPENAI_CLIP_STD)).view(1, 3, 1, 1)


def normalise_frames(pixels: np.ndarray) -> torch.Tensor:
    """(n, 3, size, size) CLIP pixel values of (n, size, size, 3) uint8 frames, as CLIPImageProcessor
    gives for square frames: ``(x / 255 - mean) / std`` folded into one multiply-add over the stack,
    channels first while still uint8 so the float pass writes the layout the model reads."""
    planar = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    return torch.addcmul(_SHIFT, planar.float(), _SCALE)


def preprocess(bundle: ClipBundle, jpegs: Sequence[bytes]) -> torch.Tensor:
    """Decode JPEG bytes to pixel values: the checkpoint's processor for real weights, else CLIP's mean/std."""
    if bundle.image_processor is not None:
        images = [Image.open(io.BytesIO(jpeg)).convert("RGB") for jpeg in jpegs]
        return bundle.image_processor(images=images, return_tensors="pt")["pixel_values"]
    return normalise_frames(decode_frames(jpegs, bundle.image_size))


def _autocast(device: torch.device, precision: str) -> AbstractContextManager:
    dtype = PRECISIONS[precision]
    if device.type != "cuda" or dtype is None:
        return nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def _embed(
    bundle: ClipBundle,
    items: Sequence[Any],
    batch_size: int,
    precision: str,
    encode: Callable[[Sequence[Any]], torch.Tensor],
) -> np.ndarray:
    """Run ``encode`` (items -> projected features) batch by batch; unit-norm float32 rows."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    out = np.zeros((len(items), bundle.dim), dtype=np.float32)
    for start in range(0, len(items), batch_size):
        with torch.no_grad(), _autocast(bundle.device, precision):
            features = encode(items[start : start + batch_size])
        out[start : start + batch_size] = F.normalize(features.float(), dim=-1).cpu().numpy()
    return out


def embed_images(
    bundle: ClipBundle, jpegs: Sequence[bytes], batch_size: int = 64, precision: str = "bf16"
) -> np.ndarray:
    """(n, dim) float32 L2-normalised image embeddings of JPEG frames; ``precision`` applies on CUDA."""

    def encode(batch: Sequence[bytes]) -> torch.Tensor:
        pixels = preprocess(bundle, batch).to(bundle.device, non_blocking=True)
        return bundle.model.get_image_features(pixel_values=pixels).pooler_output

    return _embed(bundle, jpegs, batch_size, precision, encode)


def embed_prompts(
    bundle: ClipBundle, texts: Sequence[str], batch_size: int = 256, precision: str = "bf16"
) -> np.ndarray:
    """(n, dim) float32 L2-normalised text embeddings of the texts as given (no templates)."""
    max_length = int(bundle.model.config.text_config.max_position_embeddings)

    def encode(batch: Sequence[str]) -> torch.Tensor:
        tokens = bundle.tokenizer(
            list(batch), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(bundle.device)
        return bundle.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output

    return _embed(bundle, texts, batch_size, precision, encode)


def embed_texts(
    bundle: ClipBundle, queries: Sequence[str], batch_size: int = 256, precision: str = "bf16"
) -> np.ndarray:
    """(n, dim) float32 query embeddings: per query, the re-normalised mean of its four
    ``TEMPLATES`` prompts' L2-normalised embeddings (prompt ensembling as in CLIP and CLIPSep)."""
    prompts = [template.format(query) for query in queries for template in TEMPLATES]
    per_prompt = embed_prompts(bundle, prompts, batch_size, precision)
    mean = per_prompt.reshape(len(queries), len(TEMPLATES), bundle.dim).mean(axis=1)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def encode_text_tokens(
    bundle: ClipBundle, texts: Sequence[str], batch_size: int = 256, precision: str = "bf16"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-token and pooled text features, as DALL-E 2's prior reads them.

    Returns ``tokens`` (n, T, width) float32, the last hidden states of CLIP's text encoder padded to
    its context length T (77), so every text gives the same shape; ``mask`` (n, T) bool, True at real
    tokens; ``embeds`` (n, dim) float32 unit-norm, the same embeddings :func:`embed_prompts` gives
    (CLIP's causal attention keeps padding from changing the pooled token).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    text_config = bundle.model.config.text_config
    length, width = int(text_config.max_position_embeddings), int(text_config.hidden_size)
    tokens = np.zeros((len(texts), length, width), dtype=np.float32)
    mask = np.zeros((len(texts), length), dtype=bool)
    embeds = np.zeros((len(texts), bundle.dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = bundle.tokenizer(
            list(texts[start : start + batch_size]),
            padding="max_length",
            truncation=True,
            max_length=length,
            return_tensors="pt",
        ).to(bundle.device)
        with torch.no_grad(), _autocast(bundle.device, precision):
            out = bundle.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        rows = slice(start, start + len(batch["input_ids"]))
        tokens[rows] = out.last_hidden_state.float().cpu().numpy()
        mask[rows] = batch["attention_mask"].bool().cpu().numpy()
        embeds[rows] = F.normalize(out.pooler_output.float(), dim=-1).cpu().numpy()
    return tokens, mask, embeds
