"""bench/torch_ref/data.py -- the published DebCM dataset layout (shared/SPEC.md section 1), loaded with NumPy.

    pgc = load_pgc(ROOT)            ROOT/data_pgc/: the teacher's data
    ugc = load_matching(ROOT)       ROOT/data_matching/: the student's data

Every file is read with np.load(..., allow_pickle=True) (the object arrays need it). Music features are the
concatenation [vggish | opensmile] (D_m = 256 in the published data); every dimension is read from the files.
Genre strings such as '[2]' are parsed as list literals with ast.literal_eval, never executed (SPEC 6). Feature
matrices are returned as C-contiguous float32, ids as int64.
"""
import ast
import os

import numpy as np


def _load(path):
    if not os.path.exists(path):
        raise FileNotFoundError("%s: missing (see shared/SPEC.md section 1 for the layout)" % path)
    return np.load(path, allow_pickle=True)


def _f32(a, what):
    a = np.asarray(a)
    if a.dtype == object:
        a = np.array(a.tolist(), dtype=np.float64)
    if a.ndim != 2:
        raise ValueError("%s: expected a 2-d float array, got shape %s" % (what, a.shape))
    return np.ascontiguousarray(a, dtype=np.float32)


def _pairs(a, what):
    """[P, 2] integer pairs; an object array of rows is accepted too."""
    a = np.asarray(a)
    if a.dtype == object:
        a = np.array([[int(r[0]), int(r[1])] for r in a], dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError("%s: expected [P, 2] pairs, got shape %s" % (what, a.shape))
    return np.ascontiguousarray(a[:, :2])


def _music(vggish, smile, what):
    if vggish.shape[0] != smile.shape[0]:
        raise ValueError("%s: %d vggish rows but %d openSMILE rows" % (what, vggish.shape[0], smile.shape[0]))
    return np.ascontiguousarray(np.concatenate([vggish, smile], axis=1), dtype=np.float32)


def _check_ids(ids, n, what):
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError("%s: ids outside [0, %d)" % (what, n))


def load_pgc(root):
    """data_pgc/: v_feat [Nv, Dv], m_feat [Nm, Dm], train [P, 2] and val [Q, 2] ([video, music])."""
    d = os.path.join(root, "data_pgc")
    v = _f32(_load(os.path.join(d, "mv_video_resnet_features.npy")), "mv_video_resnet_features")
    m = _music(_f32(_load(os.path.join(d, "vggish_features.npy")), "vggish_features"),
               _f32(_load(os.path.join(d, "opensmile_features_norm.npy")), "opensmile_features_norm"), "data_pgc")
    out = dict(v_feat=v, m_feat=m)
    for split in ("train", "val"):
        p = _pairs(_load(os.path.join(d, split + ".npy")), "data_pgc/%s.npy" % split)
        _check_ids(p[:, 0], v.shape[0], "data_pgc/%s.npy videos" % split)
        _check_ids(p[:, 1], m.shape[0], "data_pgc/%s.npy musics" % split)
        out[split] = p
    return out


def parse_genre(g):
    """'[2]' -> [2] (a list literal, parsed, never executed); an int or list passes through."""
    if isinstance(g, (bytes, str)):
        g = ast.literal_eval(g.decode() if isinstance(g, bytes) else g)
    if isinstance(g, (int, np.integer)):
        return [int(g)]
    return [int(x) for x in g]


def _neg_split(d, name, Nv, Nm):
    rows = _load(os.path.join(d, "100neg", name + ".npy"))
    video = np.array([int(r[0]) for r in rows], dtype=np.int64)
    pos = np.array([int(r[1]) for r in rows], dtype=np.int64)
    neg = np.stack([np.asarray(r[2], dtype=np.int64).reshape(-1) for r in rows]) if len(rows) else \
        np.zeros((0, 0), dtype=np.int64)
    w = np.asarray(_load(os.path.join(d, "video_popularity_%s.npy" % name)), dtype=np.float64).reshape(-1)
    if w.shape[0] != video.shape[0]:
        raise ValueError("video_popularity_%s.npy: %d weights for %d rows" % (name, w.shape[0], video.shape[0]))
    _check_ids(video, Nv, "100neg/%s.npy videos" % name)
    _check_ids(pos, Nm, "100neg/%s.npy positives" % name)
    _check_ids(neg, Nm, "100neg/%s.npy negatives" % name)
    return dict(video=video, positive=pos, negatives=neg, weights=w)


def load_matching(root):
    """data_matching/: v_feat, m_feat, the training rows (video, music, genre lists, user_prior [N, G], propensity),
    the 100-negative val and test splits (video, positive, negatives [R, n], weights) and user_prior_mean [G]."""
    d = os.path.join(root, "data_matching")
    v = _f32(_load(os.path.join(d, "visual_features_resnet_V.npy")), "visual_features_resnet_V")
    m = _music(_f32(_load(os.path.join(d, "music_features.npy")), "music_features"),
               _f32(_load(os.path.join(d, "new_music_smile_features_norm.npy")), "new_music_smile_features_norm"),
               "data_matching")
    rows = _load(os.path.join(d, "train.npy"))
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise ValueError("data_matching/train.npy: expected rows [video, music, genre, user_prior, ...], shape %s"
                         % (rows.shape,))
    video = np.array([int(r) for r in rows[:, 0]], dtype=np.int64)
    music = np.array([int(r) for r in rows[:, 1]], dtype=np.int64)
    prior = np.ascontiguousarray(np.array([np.asarray(p, dtype=np.float64).reshape(-1) for p in rows[:, 3]]),
                                 dtype=np.float32)
    genre = [parse_genre(g) for g in rows[:, 2]]
    prop = (np.array([float(p) for p in rows[:, 4]], dtype=np.float64) if rows.shape[1] > 4
            else np.ones(len(rows), dtype=np.float64))
    _check_ids(video, v.shape[0], "data_matching/train.npy videos")
    _check_ids(music, m.shape[0], "data_matching/train.npy musics")
    pm = np.asarray(_load(os.path.join(d, "user_prior_mean.npy")), dtype=np.float32).reshape(-1)
    if prior.ndim != 2 or prior.shape[1] != pm.shape[0]:
        raise ValueError("user_prior has %s columns, user_prior_mean.npy %d" % (prior.shape[1:], pm.shape[0]))
    return dict(v_feat=v, m_feat=m, train_video=video, train_music=music, train_prior=prior, train_genre=genre,
                train_propensity=prop, prior_mean=pm, G=int(pm.shape[0]),
                val=_neg_split(d, "val", v.shape[0], m.shape[0]), test=_neg_split(d, "test", v.shape[0], m.shape[0]))
