"""Batched, KV-cached sampling of MMT continuations under the rules that keep every sequence valid.

Each field is sampled top-k, masked so that the result stays in the encoding's canonical form
(see :class:`_Constraints`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from models.mmt.encoding import (
    BEAT,
    DURATION,
    FIELD_SIZES,
    FIELDS,
    INSTRUMENT,
    PITCH,
    POSITION,
    TYPE_END,
    TYPE_INSTRUMENT,
    TYPE_NOTE,
    TYPE_START,
    TYPE_START_NOTES,
)
from models.mmt.network import MMT
from models.training import model_device


def _top_k(
    logits: torch.Tensor, allowed: torch.Tensor, fraction: float, temperature: float, generator: torch.Generator
) -> torch.Tensor:
    """One value per row among ``allowed``: top-k sampling with k = ceil(fraction × vocabulary),
    or the most likely value when ``temperature`` is 0. A row that allows nothing draws from every
    value; callers discard such draws (e.g. a new instrument when all are declared)."""
    allowed = allowed | ~allowed.any(-1, keepdim=True)
    logits = logits.float().masked_fill(~allowed, -math.inf)
    if temperature == 0:
        return logits.argmax(-1)
    k = max(1, math.ceil(fraction * logits.shape[-1]))
    kth = logits.topk(k, dim=-1).values[:, -1:]
    probs = F.softmax(logits.masked_fill(logits < kth, -math.inf) / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _Constraints:
    """What each sample of a batch may emit next, given the rows it has so far.

    The rules keep every sequence valid and in the encoding's canonical form: event types never go
    back (instruments only right after start-of-song, notes only after start-of-notes, start-of-song
    never again); instrument events are distinct and ascending; a song declares at least one
    instrument when there is room; a note uses a declared instrument; note onsets (beat, then
    position within the beat) never decrease; and start-of-notes and end-of-song are forced when
    only the rows to close the song remain before ``max_len``.
    """

    def __init__(self, prompt: torch.Tensor, batch: int):
        self.prev_type = prompt[-1, 0].repeat(batch)
        instruments = torch.zeros(FIELD_SIZES[INSTRUMENT], dtype=torch.bool, device=prompt.device)
        instruments[prompt[prompt[:, 0] == TYPE_INSTRUMENT, INSTRUMENT]] = True
        self.declared = instruments.repeat(batch, 1)
        notes = prompt[prompt[:, 0] == TYPE_NOTE]
        last_note = notes[-1] if len(notes) else torch.zeros_like(prompt[0])
        self.last_note = last_note.repeat(batch, 1)
        self.codes = [torch.arange(size, device=prompt.device) for size in FIELD_SIZES]

    def next_rows(
        self, logits: list[torch.Tensor], remaining: int, fraction: float, temperature: float, gen: torch.Generator
    ) -> torch.Tensor:
        """Sample the next row (batch, 6) from the last-step ``logits`` and record it."""
        batch, device, codes = len(self.prev_type), self.prev_type.device, self.codes
        highest = torch.where(self.declared, codes[INSTRUMENT], 0).amax(-1)
        header = self.prev_type <= TYPE_INSTRUMENT
        has_instrument = self.declared.any(-1)
        types = torch.zeros(batch, FIELD_SIZES[0], dtype=torch.bool, device=device)
        types[:, TYPE_INSTRUMENT] = header & (highest < FIELD_SIZES[INSTRUMENT] - 1) & (remaining > 2)
        types[:, TYPE_START_NOTES] = header & (has_instrument | (remaining <= 2))
        types[:, TYPE_NOTE] = ~header & has_instrument & (remaining > 1)
        types[:, TYPE_END] = ~header
        kind = _top_k(logits[0], types, fraction, temperature, gen)

        def draw(field: int, allowed: torch.Tensor) -> torch.Tensor:
            return _top_k(logits[field], allowed, fraction, temperature, gen)

        new_instrument = draw(INSTRUMENT, codes[INSTRUMENT] > highest[:, None])
        last_beat, last_position = self.last_note[:, BEAT, None], self.last_note[:, POSITION, None]
        beat = draw(BEAT, codes[BEAT] >= last_beat.clamp(min=1))
        floor = torch.where(beat[:, None] == last_beat, last_position, 1)
        note = torch.stack(
            [
                torch.full_like(beat, TYPE_NOTE),
                beat,
                draw(POSITION, codes[POSITION] >= floor),
                draw(PITCH, codes[PITCH] >= 1),
                draw(DURATION, codes[DURATION] >= 1),
                draw(INSTRUMENT, self.declared & (codes[INSTRUMENT] >= 1)),
            ],
            dim=1,
        )

        rows = torch.zeros(batch, len(FIELDS), dtype=torch.long, device=device)
        rows[:, 0] = kind
        is_instrument, is_note = kind == TYPE_INSTRUMENT, kind == TYPE_NOTE
        rows[:, INSTRUMENT] = torch.where(is_instrument, new_instrument, 0)
        rows[is_note] = note[is_note]
        self.declared[is_instrument, new_instrument[is_instrument]] = True
        self.last_note[is_note] = note[is_note]
        self.prev_type = kind
        return rows


@torch.no_grad()
def generate_many(
    model: MMT,
    prompt: np.ndarray,
    max_len: int,
    num_samples: int,
    *,
    temperature: float = 1.0,
    top_k_fraction: float = 0.1,
    use_cache: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """``num_samples`` continuations of ``prompt`` (t, 6), generated as one batch.

    Each field is sampled top-k (k = ceil(top_k_fraction × its vocabulary), MMT's 0.1) at
    ``temperature`` (0: greedy) under the rules of :class:`_Constraints`, so every returned array
    (prompt included) ends with end-of-song, is at most ``max_len`` rows long (at most the model's
    ``max_seq_len``) and passes ``models.mmt.encoding.validate``. ``use_cache=False`` recomputes
    the whole prefix each step; it gives the same sequences and serves as the reference.
    ``device``: where to run (the model is moved there); default, where the model is.
    ``progress`` shows a bar over the generated rows.
    """
    prompt = np.asarray(prompt, dtype=np.int64).reshape(-1, len(FIELDS))
    if len(prompt) == 0 or prompt[0, 0] != TYPE_START:
        raise ValueError("a prompt starts with the start-of-song row")
    if prompt[-1, 0] == TYPE_END:
        return [prompt.copy() for _ in range(num_samples)]
    closing = 2 if prompt[-1, 0] <= TYPE_INSTRUMENT else 1
    if not len(prompt) + closing <= max_len <= model.cfg.max_seq_len:
        raise ValueError(f"max_len {max_len} leaves no room after {len(prompt)} prompt rows or exceeds max_seq_len")
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.to(device).eval()
    seq = torch.zeros(num_samples, max_len, len(FIELDS), dtype=torch.long, device=device)
    seq[:, : len(prompt)] = torch.from_numpy(prompt).to(device)
    rules = _Constraints(seq[0, : len(prompt)], num_samples)
    generator = torch.Generator(device).manual_seed(seed)
    cache = model.new_cache() if use_cache else None
    done = torch.zeros(num_samples, dtype=torch.bool, device=device)
    length = len(prompt)
    bar = tqdm(total=max_len, initial=length, disable=not progress, desc="generate", unit="event")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        while length < max_len and not done.all():
            if cache is not None:
                logits = model(seq[:, cache[0].length : length], cache)
            else:
                logits = model(seq[:, :length])
            rows = rules.next_rows(
                [out[:, -1] for out in logits], max_len - length, top_k_fraction, temperature, generator
            )
            seq[:, length] = torch.where(done[:, None], 0, rows)
            done |= rows[:, 0] == TYPE_END
            length += 1
            bar.update()
    bar.close()
    model.train(was_training)
    out = seq[:, :length].cpu().numpy()
    return [s[: int(np.argmax(s[:, 0] == TYPE_END)) + 1] for s in out]


def generate(
    model: MMT,
    prompt: np.ndarray,
    max_len: int,
    *,
    temperature: float = 1.0,
    top_k_fraction: float = 0.1,
    use_cache: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """One continuation of ``prompt``; see :func:`generate_many`."""
    return generate_many(
        model,
        prompt,
        max_len,
        1,
        temperature=temperature,
        top_k_fraction=top_k_fraction,
        use_cache=use_cache,
        seed=seed,
        device=device,
        progress=progress,
    )[0]
