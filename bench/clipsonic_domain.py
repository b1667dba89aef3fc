"""Render 8 instruments x 4 clips x 10 s, train the demo profile on clips 0-2, test on clip 3."""
import sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np, torch
from assets.core.tools import soundfont_path
from assets.videos import synthetic as syn
from models import mel
from models.audio_metrics import domain as dm, vggish as vg
torch.set_num_threads(2)
sf = soundfont_path()
jobs = [(name, i) for name in syn.INSTRUMENTS for i in range(4)]
t = time.time()
with ThreadPoolExecutor(2) as pool:
    audio = list(pool.map(lambda j: syn.render_audio(j[0], syn.video_seed(0, j[1]), 10.0, sf), jobs))
print(f"render {time.time() - t:.1f} s", flush=True)
def crops(keep):
    m, l = [], []
    for (name, i), a in zip(jobs, audio):
        if keep(i):
            c = dm.crop_mels(mel.log_mel(a, mel.CLIPSONIC), hop=16); m.append(c); l += [name] * len(c)
    return np.concatenate(m), l
tm, tl = crops(lambda i: i < 3); vm, vl = crops(lambda i: i == 3)
print(len(tm), len(vm))
cfg = dm.DOMAIN_PROFILES["demo"]
t = time.time()
with tempfile.TemporaryDirectory() as d:
    clf, res = dm.train_domain_classifier(cfg, tm, tl, vm, vl, d, lambda m, s: print(s, {k: round(v, 3) for k, v in m.items() if k.startswith("val")}) if "val_loss" in m else None, device="cpu")
print(f"train {time.time() - t:.1f} s", res)
print("held-out accuracy", np.mean(np.array(dm.classify(clf, vm)) == np.array(vl)))
torch.manual_seed(0); model = vg.VGGish().eval()
t = time.time(); e = vg.vggish_embed(model, audio[:8]); dt = time.time() - t
print(f"vggish {len(e)} examples in {dt:.2f} s: {len(e)/dt:.1f} examples/s (2 threads, CPU)")
