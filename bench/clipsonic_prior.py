"""Training steps/s and seconds per sampled embedding (64 steps, best of 2) of a prior profile."""
import sys, time
import numpy as np, torch
from models.clipsonic import prior as pr
from models.clipsonic.prior_config import PRIOR_PROFILES

name, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
cfg, rng, n, width = PRIOR_PROFILES[name], np.random.default_rng(0), 8, 64
unit = lambda x: (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
data = pr.PriorSet(rng.standard_normal((n, 77, width), dtype=np.float32), np.arange(77)[None].repeat(n, 0) < 16,
                   unit(rng.standard_normal((n, 512))), [unit(rng.standard_normal((6, 512))) for _ in range(n)])
torch.manual_seed(0)
prior = pr.build_prior(cfg, width)
prior.set_stats(np.concatenate(data.image_embeds))
opt = torch.optim.AdamW([p for p in prior.parameters() if p.requires_grad], lr=cfg.lr)
schedule = pr.prior_schedule(cfg)
for i in range(steps + 2):  # two warm-up steps
    if i == 2:
        t0 = time.perf_counter()
    loss = pr.prior_loss(prior, data, pr.prior_batch(data, cfg, i), schedule)
    opt.zero_grad(); loss.backward(); opt.step()
train_s = (time.perf_counter() - t0) / steps
prior.eval()
t0 = time.perf_counter()
pr.sample_prior(prior, data.tokens, data.token_mask, data.text_embeds, steps=64, n_samples=2)
print(f"{name}: {1 / train_s:.2f} train steps/s; {(time.perf_counter() - t0) / (2 * n):.4f} s per sampled embedding")
