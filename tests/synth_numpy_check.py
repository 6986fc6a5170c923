#!/usr/bin/env python3
"""tests/synth_numpy_check.py DEBCM WORKDIR — runs `debcm synth --scale tiny` and loads every file with NumPy itself
(np.load(..., allow_pickle=True), as the published DebCM code does), checking the types and invariants that code
relies on (SPEC §1) and that the planted structure is there. A second run with --bias 0 checks that the bias knob
is what moves the share of training labels that are the true music. Exit 0 pass, 1 fail."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def synth(debcm, out, *args):
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([debcm, "synth", "--scale", "tiny", "--out", out, *args], capture_output=True, text=True)
    print(r.stdout.strip())
    if r.returncode != 0:
        print(r.stderr)
        sys.exit(f"FAIL: debcm synth exited {r.returncode}")


def load(root, rel):
    return np.load(os.path.join(root, rel), allow_pickle=True)


def features(root, rel, rows=None, cols=None):
    a = load(root, rel)
    check(a.dtype == np.float32 and a.ndim == 2, f"{rel}: float32 2-d, found {a.dtype} {a.shape}")
    check(np.isfinite(a).all(), f"{rel}: all finite")
    if rows is not None:
        check(a.shape[0] == rows, f"{rel}: {rows} rows, found {a.shape[0]}")
    if cols is not None:
        check(a.shape[1] == cols, f"{rel}: {cols} columns, found {a.shape[1]}")
    return a


def check_dataset(root):
    stats = json.load(open(os.path.join(root, "gen_stats.json")))
    args = stats["args"]
    Nv, Nm, G, K, P = stats["videos"], stats["musics"], stats["genres"], args["num_neg"], args["pgc_pairs"]
    Dv, Dg, Ds = args["dim_v"], args["dim_vggish"], args["dim_smile"]
    print(f"{root}: {Nv} videos, {Nm} musics, G {G}, {K} negatives, {P} PGC, D_v {Dv}, {Dg}+{Ds}")

    # ---- data_pgc ---------------------------------------------------------------------------------------------
    pv = features(root, "data_pgc/mv_video_resnet_features.npy", P, Dv)
    check((pv >= 0).all(), "PGC video features are post-ReLU (>= 0)")
    vg = features(root, "data_pgc/vggish_features.npy", Nm, Dg)
    sm = features(root, "data_pgc/opensmile_features_norm.npy", Nm, Ds)
    check(sm.min() >= 0 and sm.max() <= 1, "openSMILE features normalised to [0, 1]")
    pairs = []
    for rel, n in (("data_pgc/train.npy", stats["pgc_train"]), ("data_pgc/val.npy", stats["pgc_val"])):
        a = load(root, rel)
        check(a.dtype == np.int64 and a.shape == (n, 2), f"{rel}: int64 [{n}, 2], found {a.dtype} {a.shape}")
        check(((a[:, 0] >= 0) & (a[:, 0] < P)).all() and ((a[:, 1] >= 0) & (a[:, 1] < Nm)).all(),
              f"{rel}: ids in range")
        pairs.append(a)
    check(stats["pgc_train"] + stats["pgc_val"] == P and stats["pgc_val"] == P // 10, "PGC split 90/10")
    allp = np.concatenate(pairs)
    check(sorted(allp[:, 0].tolist()) == list(range(P)), "PGC: every segment in exactly one split")

    # ---- data_matching: features --------------------------------------------------------------------------------
    v = features(root, "data_matching/visual_features_resnet_V.npy", Nv, Dv)
    check((v >= 0).all(), "UGC video features are post-ReLU (>= 0)")
    check(np.array_equal(features(root, "data_matching/music_features.npy", Nm, Dg), vg),
          "VGGish features are the same in both directories")
    check(np.array_equal(features(root, "data_matching/new_music_smile_features_norm.npy", Nm, Ds), sm),
          "openSMILE features are the same in both directories")
    check(abs(float(vg.mean())) < 0.3 and 0.6 < float(vg.std()) < 1.4, f"VGGish about unit variance ({vg.std():.3f})")

    # ---- data_matching/train.npy ----------------------------------------------------------------------------------
    t = load(root, "data_matching/train.npy")
    check(t.dtype == object and t.shape == (stats["train"], 5), f"train.npy: object [n, 5], found {t.dtype} {t.shape}")
    genre_of = {}
    prior_of_row = []
    ok_types = ok_genre = ok_prior = ok_prop = ok_range = True
    for r in t:
        vid, mus, gstr, prior, prop = r
        ok_types &= type(vid) is np.int64 and type(mus) is np.int64 and type(gstr) is str and type(prior) is list \
            and type(prop) is float
        ok_range &= 0 <= vid < Nv and 0 <= mus < Nm
        if re.fullmatch(r"\[\d+(, \d+)*\]", gstr):
            gl = ast.literal_eval(gstr)
            ok_genre &= all(0 <= g < G for g in gl) and gl == sorted(set(gl))
            ok_genre &= genre_of.setdefault(int(mus), gstr) == gstr
        else:
            ok_genre = False
        ok_prior &= len(prior) == G and all(type(x) is float and x > 0 for x in prior) and abs(sum(prior) - 1) < 1e-9
        ok_prop &= 0 < prop <= 1
        prior_of_row.append(prior)
    check(ok_types, "train rows: [np.int64, np.int64, str, list, float]")
    check(ok_range, "train rows: ids in range")
    check(ok_genre, "train rows: genre strings like '[2]' or '[1, 3]', ids < G, one string per music")
    check(ok_prior, "train rows: user prior = G positive floats summing to 1")
    check(ok_prop, "train rows: propensity in (0, 1]")
    check(any(", " in s for s in genre_of.values()) or len(genre_of) < 20, "some multi-genre strings like '[1, 3]'")
    labels = np.array([int(r[1]) for r in t])
    counts = np.bincount(labels, minlength=Nm)
    props = np.array([r[4] for r in t])
    check(np.allclose(props, np.sqrt(counts[labels] / counts.max())), "propensity = (label count / max count)^0.5")

    upm = load(root, "data_matching/user_prior_mean.npy")
    check(upm.dtype == np.float64 and upm.shape == (G,),
          f"user_prior_mean: float64 [{G}], found {upm.dtype} {upm.shape}")
    check(np.allclose(upm, np.mean(np.array(prior_of_row), axis=0), rtol=0, atol=1e-12) and abs(upm.sum() - 1) < 1e-9,
          "user_prior_mean = mean of the training rows' priors, sums to 1")

    # ---- evaluation rows ------------------------------------------------------------------------------------------
    videos = [int(r[0]) for r in t]
    for split in ("val", "test"):
        e = load(root, f"data_matching/100neg/{split}.npy")
        n = stats[split]
        check(e.dtype == object and e.shape == (n, 3),
              f"100neg/{split}.npy: object [{n}, 3], found {e.dtype} {e.shape}")
        ok = True
        for vid, pos, neg in e:
            ok &= type(vid) is np.int64 and type(pos) is np.int64 and 0 <= vid < Nv and 0 <= pos < Nm
            ok &= isinstance(neg, np.ndarray) and neg.dtype == np.int64 and neg.shape == (K,)
            ok &= len(set(neg.tolist())) == K and int(pos) not in set(neg.tolist())
            ok &= bool(((neg >= 0) & (neg < Nm)).all())
            videos.append(int(vid))
        check(ok, f"100neg/{split}: [np.int64, np.int64, int64[{K}]], distinct negatives != positive, in range")
        w = load(root, f"data_matching/video_popularity_{split}.npy")
        check(w.dtype == np.float64 and w.shape == (n,), f"video_popularity_{split}: float64 [{n}]")
        check(abs(w.sum() - 1) < 1e-9 and (w > 0).all(), f"video_popularity_{split}: positive, sums to 1")
        inv = 1.0 / (counts[[int(r[1]) for r in e]] + 1)
        check(np.allclose(w, inv / inv.sum()), f"video_popularity_{split}: inverse popularity of the positive")
    check(sorted(videos) == list(range(Nv)), "every video in exactly one of train / val / test")
    check(stats["val"] == Nv // 10 and stats["test"] == Nv // 10, "UGC split 80/10/10")
    return stats, t, v, labels


def main():
    debcm, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    root = os.path.join(work, "tiny")
    synth(debcm, root)
    stats, t, v, labels = check_dataset(root)
    bias = stats["args"]["bias"]
    share = stats["train_label_is_true_music"]
    print(f"train labels that are the true music: {share:.3f} (1 - bias = {1 - bias})")
    check(1 - bias - 0.12 < share < 1 - bias + 0.15, "share of true-music labels near 1 - bias")

    # planted structure, visible in the files alone:
    # (1) selection bias: the uploaders' priors (their label-genre histograms) are more peaked than without the
    # bias (--bias 0 run below; some peak is there even then: ~12 labels per uploader)
    def mean_max_prior(rows):
        return np.mean([max(r[3]) for r in rows])
    # (2) content: the video features of two validation/test videos with the same true music are more alike
    ev = np.concatenate([load(root, f"data_matching/100neg/{s}.npy") for s in ("val", "test")])
    pgc = np.concatenate([load(root, "data_pgc/train.npy"), load(root, "data_pgc/val.npy")])
    pv = load(root, "data_pgc/mv_video_resnet_features.npy")
    x = np.concatenate([v[[int(r[0]) for r in ev]], pv[pgc[:, 0]]]).astype(np.float64)
    m = np.concatenate([np.array([int(r[1]) for r in ev]), pgc[:, 1]])
    x -= x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    same = (m[:, None] == m[None, :]) & ~np.eye(len(m), dtype=bool)
    diff = m[:, None] != m[None, :]
    print(f"cosine of video features: same music {cos[same].mean():.3f} vs other music {cos[diff].mean():.3f}")
    check(cos[same].mean() > cos[diff].mean() + 0.03, "videos of the same true music have closer features")

    unbiased = os.path.join(work, "tiny-unbiased")
    synth(debcm, unbiased, "--bias", "0")
    s0, t0, _, _ = check_dataset(unbiased)
    check(s0["train_label_is_true_music"] == 1.0, "--bias 0: every training label is the true music")
    peak, peak0 = mean_max_prior(t), mean_max_prior(t0)
    print(f"mean of the uploader prior's largest entry: {peak:.3f} with bias {bias}, {peak0:.3f} without")
    check(peak > peak0 + 0.03, "the bias concentrates uploaders' labels on their favourite genre")

    if failures:
        print(f"synth_numpy_check: {len(failures)} failure(s)")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("synth_numpy_check: pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
