"""bench/torch_ref/model.py -- DebCM in PyTorch, written from shared/SPEC.md (sections 2-5).

Our own reference implementation, not the authors' code. Parameter and buffer names equal the published
state_dict names (``v_encoder.fc_mu.weight``, ``m_decoder.bn1.running_mean``, ``confounder_emb.weight``,
``linear.weight``, ...), so the fixtures of shared/fixtures load one to one (the published unused ``fc1`` layers
are left out, as SPEC 3 allows).

Contents:
  Encoder, Decoder              the building blocks of SPEC 2 (BN -> dropout -> unit-normalised mu / logvar;
                                BN -> dropout -> linear -> relu)
  Teacher, Student              SPEC 3 and SPEC 4; ``forward_loss(...)`` returns (loss, terms)
  match_terms                   the matching term: ``published`` (faithful clamp + k LARGEST), ``hinge``,
                                ``softmax`` (SPEC 6)
  distill_term                  ``published`` (KLG as published) or ``kl`` (the true divergence)
  make_adam                     torch.optim.Adam with PyTorch's L2 weight decay (SPEC 5)
  init_spec_                    SPEC 5 initialisation
  eval_negatives, eval_full_rank  the two evaluation protocols (ties count against the positive)

Random draws: every training forward takes ``draws``; None draws fresh ones from torch's generator, or a dict
with ``eps_m``, ``eps_v`` (reparameterisation noise, [B, L]) and ``mask_m_encoder``, ``mask_v_encoder``,
``mask_m_decoder``, ``mask_video_v_decoder`` (dropout keep-masks, 1 = kept) replays recorded ones.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

LV_MAX = 10.0       # lv' = min(lv, 10)
NORM_EPS = 1e-10    # normalize(y) = y / max(|y|, 1e-10)
KLG_EPS = 1e-15     # the epsilon of the published KLG

MATCH_VARIANTS = ("published", "hinge", "softmax")
DISTILL_VARIANTS = ("published", "kl")


def _dropout(h, p, training, mask):
    """Inverted dropout; ``mask`` (1 = kept) replays a recorded draw."""
    if not training or p == 0.0:
        return h
    if mask is None:
        return F.dropout(h, p, True)
    return h * (mask.to(h.dtype) * (1.0 / (1.0 - p)))


class Encoder(nn.Module):
    """E of SPEC 2: h = dropout(BN(x)); mu = normalize(W_mu h + b); lv = normalize(W_lv h + b)."""

    def __init__(self, D, L, p=0.2):
        super().__init__()
        self.bn1 = nn.BatchNorm1d(D, eps=1e-5, momentum=0.1)
        self.fc_mu = nn.Linear(D, L)
        self.fc_logvar = nn.Linear(D, L)
        self.p = p

    def forward(self, x, mask=None):
        h = _dropout(self.bn1(x), self.p, self.training, mask)
        mu = F.normalize(self.fc_mu(h), p=2.0, dim=1, eps=NORM_EPS)
        lv = F.normalize(self.fc_logvar(h), p=2.0, dim=1, eps=NORM_EPS)
        return mu, lv


class Decoder(nn.Module):
    """R of SPEC 2: out = relu(W dropout(BN(z)) + b)."""

    def __init__(self, L, D, p=0.2):
        super().__init__()
        self.bn1 = nn.BatchNorm1d(L, eps=1e-5, momentum=0.1)
        self.fc2 = nn.Linear(L, D)
        self.p = p

    def forward(self, z, mask=None):
        return F.relu(self.fc2(_dropout(self.bn1(z), self.p, self.training, mask)))


def reparam(mu, lv, training, eps=None):
    """z = mu + eps * exp(min(lv, 10) / 2) in training mode, z = mu in evaluation mode."""
    if not training:
        return mu
    if eps is None:
        eps = torch.randn_like(mu)
    return mu + eps * torch.exp(0.5 * torch.clamp(lv, max=LV_MAX))


def kl_std_normal(mu, lv):
    """KL(N(mu, e^lv') || N(0, I)) = -1/2 * mean_rows sum_l (1 + lv' - mu^2 - e^lv')."""
    lvc = torch.clamp(lv, max=LV_MAX)
    return -0.5 * torch.mean(torch.sum(1.0 + lvc - mu.pow(2) - torch.exp(lvc), dim=1))


def _offdiag(M):
    """[B, B] -> [B, B-1]: row a without its entry a."""
    B = M.shape[0]
    keep = ~torch.eye(B, dtype=torch.bool, device=M.device)
    return M[keep].view(B, B - 1)


def match_terms(zm, zv, variant="published", margin=0.05, k=40, tau=0.1):
    """The in-batch matching terms (music, video) of SPEC 3 / SPEC 6 and the k used (0 for softmax).

    S = Zm Zv^T; "music" runs over the rows of S (positive S_ii), "video" over the columns (positive S_jj).
      published: mean of the k LARGEST clamp(S_pos - S_neg - margin, 0, 1e6)  (the loss SUBTRACTS them)
      hinge:     mean of the k LARGEST [margin - S_pos + S_neg]_+             (the loss adds them)
      softmax:   cross-entropy of the positive over S / tau, rows and columns  (the loss adds them)
    k is capped at B - 1 (a short final batch)."""
    B = zm.shape[0]
    if B < 2:
        raise ValueError("a matching term needs at least 2 rows (got %d)" % B)
    S = zm @ zv.t()
    if variant == "softmax":
        target = torch.arange(B, device=S.device)
        return F.cross_entropy(S / tau, target), F.cross_entropy(S.t() / tau, target), 0
    keff = min(int(k), B - 1)
    pos = torch.diagonal(S)
    out = []
    for M in (S, S.t()):  # row a of M: positive M[a, a], negatives M[a, j], j != a
        if variant == "published":
            vals = torch.clamp(pos[:, None] - M - margin, 0.0, 1e6)
        elif variant == "hinge":
            vals = torch.clamp(margin - pos[:, None] + M, min=0.0)
        else:
            raise ValueError("unknown matching variant %r" % (variant,))
        out.append(torch.topk(_offdiag(vals), keff, dim=1).values.mean())
    return out[0], out[1], keff


def match_sign(variant):
    """The sign of the matching terms in the loss: the published code maximises them."""
    return -1.0 if variant == "published" else 1.0


def distill_term(mu1, mu2, lv1, lv2, variant="published"):
    """Distillation of SPEC 4 / SPEC 6 (before alpha). Student (mu1, lv1), frozen teacher (mu2, lv2).

    published (KLG): -1/2 * mean_rows(1 - sum_l [log(e2/(e1+eps)+eps) - (e1 + dmu^2)/(e2+eps)]), the "1 -" outside
                     the sum as published; kl: 1/2 * mean_rows sum_l [lv2' - lv1' + (e1 + dmu^2)/e2 - 1]."""
    l1 = torch.clamp(lv1, max=LV_MAX)
    l2 = torch.clamp(lv2, max=LV_MAX)
    e1, e2 = torch.exp(l1), torch.exp(l2)
    d2 = (mu1 - mu2).pow(2)
    if variant == "published":
        t = torch.log(e2 / (e1 + KLG_EPS) + KLG_EPS) - (e1 + d2) / (e2 + KLG_EPS)
        return -0.5 * torch.mean(1.0 - torch.sum(t, dim=1))
    if variant == "kl":
        return 0.5 * torch.mean(torch.sum((l2 - l1) + (e1 + d2) / e2 - 1.0, dim=1))
    raise ValueError("unknown distillation variant %r" % (variant,))


def _draw(draws, name):
    return None if draws is None else draws[name]


class Teacher(nn.Module):
    """SPEC 3: E_m, E_v, R_m (music from the video latent), R_v (video from the music latent)."""

    def __init__(self, D_v, D_m, L=128, p=0.2):
        super().__init__()
        self.m_encoder = Encoder(D_m, L, p)
        self.m_decoder = Decoder(L, D_m, p)
        self.v_encoder = Encoder(D_v, L, p)
        self.video_v_decoder = Decoder(L, D_v, p)
        self.D_v, self.D_m, self.L = D_v, D_m, L

    def _encode_pair(self, x_v, x_m, draws):
        mu_m, lv_m = self.m_encoder(x_m, _draw(draws, "mask_m_encoder"))
        mu_v, lv_v = self.v_encoder(x_v, _draw(draws, "mask_v_encoder"))
        z_m = reparam(mu_m, lv_m, self.training, _draw(draws, "eps_m"))
        z_v = reparam(mu_v, lv_v, self.training, _draw(draws, "eps_v"))
        return mu_m, lv_m, mu_v, lv_v, z_m, z_v

    def forward_loss(self, x_v, x_m, cfg, draws=None):
        """The teacher's training loss (SPEC 3) and its terms (tensors, for logging / checks)."""
        mu_m, lv_m, mu_v, lv_v, z_m, z_v = self._encode_pair(x_v, x_m, draws)
        r_m = self.m_decoder(z_v, _draw(draws, "mask_m_decoder"))
        r_v = self.video_v_decoder(z_m, _draw(draws, "mask_video_v_decoder"))
        recon = F.mse_loss(r_m, x_m) + F.mse_loss(r_v, x_v)
        music, video, keff = match_terms(z_m, z_v, cfg.match, cfg.margin, cfg.k, cfg.tau)
        kl_m, kl_v = kl_std_normal(mu_m, lv_m), kl_std_normal(mu_v, lv_v)
        s = match_sign(cfg.match)
        loss = s * cfg.factor * music + s * video + kl_m + kl_v + cfg.w_recon * recon
        return loss, dict(recon=recon, kl_m=kl_m, kl_v=kl_v, music=music, video=video, k=keff)

    @torch.no_grad()
    def posteriors(self, x, modality):
        """Eval-mode (mu, lv) of one encoder; the caller sets eval()."""
        return (self.m_encoder if modality == "music" else self.v_encoder)(x)


class Student(Teacher):
    """SPEC 4: the teacher's blocks plus the confounder embedding Cemb [G, L] and W_c [L, 2L], b_c."""

    def __init__(self, D_v, D_m, G, L=128, p=0.2):
        super().__init__(D_v, D_m, L, p)
        self.confounder_emb = nn.Embedding(G, L)
        self.linear = nn.Linear(2 * L, L)
        self.G = G

    def deconfound(self, z_m, prior_mean):
        """z'_m = W_c [c ; z_m] + b_c with c = sum_g pi_g Cemb_g (pi: [G])."""
        c = prior_mean.to(z_m.dtype) @ self.confounder_emb.weight
        return self.linear(torch.cat([c.expand(z_m.shape[0], -1), z_m], dim=1))

    def forward_loss(self, x_v, x_m, prior, cfg, teacher=None, teacher_post=None, draws=None):
        """The student's training loss (SPEC 4). The frozen teacher's eval-mode posteriors come from ``teacher``
        (run here, in eval mode, without gradient) or precomputed in ``teacher_post`` = (mu_m, lv_m, mu_v, lv_v)."""
        mu_m, lv_m, mu_v, lv_v, z_m, z_v = self._encode_pair(x_v, x_m, draws)
        zc = self.deconfound(z_m, prior.mean(dim=0))
        r_m = self.m_decoder(z_v, _draw(draws, "mask_m_decoder"))
        r_v = self.video_v_decoder(zc, _draw(draws, "mask_video_v_decoder"))
        recon = F.mse_loss(r_m, x_m) + F.mse_loss(r_v, x_v)
        music, video, keff = match_terms(zc, z_v, cfg.match, cfg.margin, cfg.k, cfg.tau)
        if teacher_post is None:
            with torch.no_grad():
                was = teacher.training
                teacher.eval()
                tmu_m, tlv_m = teacher.m_encoder(x_m)
                tmu_v, tlv_v = teacher.v_encoder(x_v)
                teacher.train(was)
        else:
            tmu_m, tlv_m, tmu_v, tlv_v = teacher_post
        distill_m = distill_term(mu_m, tmu_m, lv_m, tlv_m, cfg.distill)
        distill_v = distill_term(mu_v, tmu_v, lv_v, tlv_v, cfg.distill)
        kl_m, kl_v = kl_std_normal(mu_m, lv_m), kl_std_normal(mu_v, lv_v)
        s = match_sign(cfg.match)
        loss = (s * cfg.factor * music + s * video + cfg.alpha * (distill_m + distill_v) + kl_m + kl_v
                + cfg.w_recon * recon)
        return loss, dict(recon=recon, kl_m=kl_m, kl_v=kl_v, music=music, video=video, distill_m=distill_m,
                          distill_v=distill_v, k=keff)


class Config:
    """Hyper-parameters (SPEC 3-5 defaults). ``student`` picks the student's lr."""

    def __init__(self, student=False, **kw):
        self.lr = 1e-3 if student else 1e-4
        self.weight_decay = 1e-3
        self.batch = 1024
        self.epochs = 50
        self.L = 128
        self.dropout = 0.2
        self.match = "published"
        self.margin = 0.05
        self.k = 40
        self.tau = 0.1          # softmax variant only (SPEC names no default; the C engine's choice)
        self.distill = "published"
        self.alpha = 5e-5
        self.factor = 1.0
        self.w_recon = 1.0
        for key, val in kw.items():
            if not hasattr(self, key):
                raise KeyError(key)
            setattr(self, key, val)
        if self.match not in MATCH_VARIANTS:
            raise ValueError("match must be one of %s" % (MATCH_VARIANTS,))
        if self.distill not in DISTILL_VARIANTS:
            raise ValueError("distill must be one of %s" % (DISTILL_VARIANTS,))


def make_adam(model, lr, weight_decay, fused=None):
    """SPEC 5: Adam (0.9, 0.999, eps 1e-8, bias-corrected) with PyTorch's L2 weight decay, over every trainable
    parameter (never the running statistics: those are buffers). ``fused`` is passed only when not None."""
    kw = dict(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    if fused is not None:
        kw["fused"] = fused
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], **kw)


@torch.no_grad()
def init_spec_(model, generator=None):
    """SPEC 5 initialisation: Xavier normal for W_mu, W_lv and the decoders' W; PyTorch's default
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every bias and for W_c (what nn.Linear already does); BN gamma 1,
    beta 0; Cemb ~ N(0, 1) (nn.Embedding's default). Uses torch's global generator (seed it first)."""
    for enc in (model.m_encoder, model.v_encoder):
        nn.init.xavier_normal_(enc.fc_mu.weight)
        nn.init.xavier_normal_(enc.fc_logvar.weight)
    for dec in (model.m_decoder, model.video_v_decoder):
        nn.init.xavier_normal_(dec.fc2.weight)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm1d):
            mod.reset_parameters()
    if isinstance(model, Student):
        nn.init.normal_(model.confounder_emb.weight, 0.0, 1.0)
    return model


# ---- evaluation (SPEC 3 validation, SPEC 4 evaluation); all in eval mode ---------------------------------------

@torch.no_grad()
def embed(encoder, x, chunk=8192):
    """mu of an encoder for every row of x (eval mode: the caller sets it), in chunks of rows."""
    outs = [encoder(x[i:i + chunk])[0] for i in range(0, x.shape[0], chunk)]
    return torch.cat(outs, dim=0) if outs else x.new_zeros((0, encoder.fc_mu.out_features))


def _as_tensor(a, device, dtype=None):
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=dtype) if dtype is not None else a.to(device)
    return torch.as_tensor(a, device=device, dtype=dtype)


@torch.no_grad()
def eval_negatives(student, v_feat, m_feat, prior_mean, video, positive, negatives, weights, Ks=(1, 5, 10, 15, 20, 25),
                   chunk=2048):
    """The 100-negative protocol of SPEC 4: e_m = W_c [c_bar ; mu_m] + b_c, score = mu_v . e_m, rank_r =
    #{negatives with score >= score(positive)} (ties count against the positive). Returns a dict with weighted
    recall[K], ndcg[K], rows, tie_rows and rows_positive_in_negatives. Features may be NumPy or tensors."""
    was = student.training
    student.eval()
    dev = next(student.parameters()).device
    m = _as_tensor(m_feat, dev, torch.float32)
    video = _as_tensor(video, dev, torch.long)
    positive = _as_tensor(positive, dev, torch.long)
    negatives = _as_tensor(negatives, dev, torch.long)
    w = _as_tensor(weights, dev, torch.float64)
    e_m = student.deconfound(embed(student.m_encoder, m), _as_tensor(prior_mean, dev, torch.float32))
    # embed only the videos the rows use
    uniq, inv = torch.unique(video, return_inverse=True)
    vsel = v_feat[uniq.cpu().numpy()] if not isinstance(v_feat, torch.Tensor) else v_feat[uniq.to(v_feat.device)]
    mu_v = embed(student.v_encoder, _as_tensor(vsel, dev, torch.float32))[inv]
    ranks, ties = [], 0
    for i in range(0, mu_v.shape[0], chunk):  # chunks of rows: e_m[negatives] is [rows, n_neg, L]
        mv, pos_i, neg_i = mu_v[i:i + chunk], positive[i:i + chunk], negatives[i:i + chunk]
        s_pos = (mv * e_m[pos_i]).sum(dim=1)
        s_neg = torch.einsum("rl,rnl->rn", mv, e_m[neg_i])
        ranks.append((s_neg >= s_pos[:, None]).sum(dim=1))
        ties += int((s_neg == s_pos[:, None]).any(dim=1).sum())
    rank = torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long, device=dev)
    res = dict(recall={}, ndcg={}, rows=int(video.shape[0]), tie_rows=ties,
               rows_positive_in_negatives=int((negatives == positive[:, None]).any(dim=1).sum()))
    rank_d = rank.to(torch.float64)
    for K in Ks:
        hit = (rank < K).to(torch.float64)
        res["recall"][K] = float((w * hit).sum())
        res["ndcg"][K] = float((w * hit / torch.log2(rank_d + 2.0)).sum())
    student.train(was)
    return res


@torch.no_grad()
def eval_full_rank(teacher, v_feat, m_feat, video, music, Ks=(1, 5, 10, 25), chunk=4096):
    """The teacher's full ranking of SPEC 3: score = mu_v . mu_m over ALL musics; rank = #{other musics with
    score >= score(true music)}; Recall@K = fraction of pairs with rank < K. Returns recall[K], rows, tie_rows."""
    was = teacher.training
    teacher.eval()
    dev = next(teacher.parameters()).device
    mu_m = embed(teacher.m_encoder, _as_tensor(m_feat, dev, torch.float32))
    video = _as_tensor(video, dev, torch.long)
    music = _as_tensor(music, dev, torch.long)
    uniq, inv = torch.unique(video, return_inverse=True)
    vsel = v_feat[uniq.cpu().numpy()] if not isinstance(v_feat, torch.Tensor) else v_feat[uniq.to(v_feat.device)]
    mu_v = embed(teacher.v_encoder, _as_tensor(vsel, dev, torch.float32))[inv]
    ranks, ties = [], 0
    for i in range(0, mu_v.shape[0], chunk):
        sc = mu_v[i:i + chunk] @ mu_m.t()
        mus = music[i:i + chunk]
        pos = sc.gather(1, mus[:, None])
        ge = sc >= pos
        ge.scatter_(1, mus[:, None], False)  # the true music itself is not an "other" music
        ranks.append(ge.sum(dim=1))
        eq = sc == pos
        eq.scatter_(1, mus[:, None], False)
        ties += int(eq.any(dim=1).sum())
    rank = torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long, device=dev)
    n = max(int(rank.shape[0]), 1)
    res = dict(recall={K: float((rank < K).sum()) / n for K in Ks}, rows=int(rank.shape[0]), tie_rows=ties)
    teacher.train(was)
    return res


def param_count(model):
    return sum(p.numel() for p in model.parameters())


__all__ = ["Encoder", "Decoder", "Teacher", "Student", "Config", "match_terms", "match_sign", "distill_term",
           "kl_std_normal", "reparam", "make_adam", "init_spec_", "embed", "eval_negatives", "eval_full_rank",
           "param_count"]
