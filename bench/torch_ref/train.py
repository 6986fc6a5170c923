#!/usr/bin/env python3
"""bench/torch_ref/train.py -- train DebCM end to end with our PyTorch reference (model.py, data.py).

    python3 bench/torch_ref/train.py ROOT --form published|fast [--epochs N] [--teacher-epochs N]
        [--student-epochs N] [--seed S] [--device cpu|cuda] [--threads N] [--json OUT.json] [...]

The job of SPEC 5: train the teacher on ROOT/data_pgc (full-ranking Recall@25 on val each epoch, keep the best
epoch) -> train the student on ROOT/data_matching with that frozen teacher (100-negative weighted Recall@25 on
val each epoch, keep the best epoch) -> test report (K = 10, 15, 20, 25). Both forms run the same model.py, the
same losses and the same optimiser; they differ only in how batches reach the model:

  --form published   the published pipeline's shape: a torch DataLoader over NumPy arrays (shuffled, last short
                     batch kept); each sample's __getitem__ also draws one negative music by building a Python set
                     of every music and never uses it (SPEC 6; --no-unused-negative turns that off); per batch the
                     features are gathered by NumPy fancy indexing and copied host -> device; the frozen teacher
                     runs its two encoders on every student batch; loss.item() every batch.
  --form fast        features and ids live on the device as tensors; each epoch is one torch.randperm and the
                     batches are gathered with index_select (no DataLoader, no per-sample Python); the frozen
                     teacher's eval-mode posteriors are computed once per run and gathered per batch (they depend
                     on the row alone); Adam is fused where this torch supports it on this device (else foreach);
                     torch.compile is used only when this torch has it (torch 1.13 has none) unless --no-compile.

Prints per epoch the training time and samples/s of each phase and the validation metrics; --json writes the
same numbers (and the test report) to a file.
"""
import argparse
import copy
import inspect
import json
import pickle
import os
import platform
import random
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
import model as M  # noqa: E402


# ---- the published form's Datasets -----------------------------------------------------------------------------

class _UnusedNegative:
    """The published per-sample negative draw: a Python set of every music, minus the positive, one random pick,
    never used (SPEC 6: most of an epoch's CPU time in the published code)."""

    def __init__(self, n_music, enabled):
        self.n_music, self.enabled = n_music, enabled

    def __call__(self, positive):
        if not self.enabled:
            return None
        candidates = set(range(self.n_music))
        candidates.discard(int(positive))
        return random.choice(tuple(candidates))


class PGCDataset(torch.utils.data.Dataset):
    def __init__(self, pairs, n_music, unused_negative=True):
        self.pairs = pairs
        self.neg = _UnusedNegative(n_music, unused_negative)

    def __len__(self):
        return self.pairs.shape[0]

    def __getitem__(self, i):
        v, m = self.pairs[i]
        self.neg(m)
        return int(v), int(m)


class MatchingDataset(torch.utils.data.Dataset):
    def __init__(self, video, music, prior, n_music, unused_negative=True):
        self.video, self.music, self.prior = video, music, prior
        self.neg = _UnusedNegative(n_music, unused_negative)

    def __len__(self):
        return self.video.shape[0]

    def __getitem__(self, i):
        self.neg(self.music[i])
        return int(self.video[i]), int(self.music[i]), self.prior[i]


# ---- helpers --------------------------------------------------------------------------------------------------

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_optimizer(net, cfg, form, device):
    """Adam with L2 weight decay (model.make_adam); the fast form asks for fused (CUDA, when this torch has it) or
    foreach. Returns (optimizer, description)."""
    params = inspect.signature(torch.optim.Adam).parameters
    if form == "fast":
        if device.type == "cuda" and "fused" in params:
            try:
                return M.make_adam(net, cfg.lr, cfg.weight_decay, fused=True), "adam fused"
            except (RuntimeError, ValueError, TypeError) as e:
                print("fused Adam unavailable (%s): foreach" % e)
        if "foreach" in params:
            opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.999),
                                   eps=1e-8, weight_decay=cfg.weight_decay, foreach=True)
            return opt, "adam foreach"
    return M.make_adam(net, cfg.lr, cfg.weight_decay), "adam"


def maybe_compile(fn, enabled):
    """torch.compile(fn) when this torch has it and `enabled`; else fn. Returns (callable, description)."""
    if enabled is None:
        return fn, "eager"
    if not enabled:
        return fn, "eager (--no-compile)"
    if not hasattr(torch, "compile"):
        return fn, "eager (torch %s has no torch.compile)" % torch.__version__
    try:
        return torch.compile(fn), "torch.compile"
    except Exception as e:  # noqa: BLE001 -- any failure falls back to eager
        return fn, "eager (torch.compile failed: %s)" % e


class Step:
    """A training-step callable that falls back to eager if the compiled one fails on its first call."""

    def __init__(self, eager, enabled):
        self.eager = eager
        self.fn, self.mode = maybe_compile(eager, enabled)
        self.tried = self.fn is eager

    def __call__(self, *a, **kw):
        if self.tried:
            return self.fn(*a, **kw)
        try:
            out = self.fn(*a, **kw)
            self.tried = True
            return out
        except Exception as e:  # noqa: BLE001
            print("torch.compile failed on the first step (%s): eager" % e)
            self.fn, self.mode, self.tried = self.eager, "eager (torch.compile failed)", True
            return self.fn(*a, **kw)


def summarize(epochs):
    """Mean and median training time per epoch and samples/s (the first epoch included: warm-up is real)."""
    if not epochs:
        return {}
    ts = [e["train_s"] for e in epochs]
    n = sum(e["samples"] for e in epochs)
    return dict(epoch_s_mean=float(np.mean(ts)), epoch_s_median=float(np.median(ts)),
                epoch_s_min=float(np.min(ts)), samples_per_s=n / max(sum(ts), 1e-12),
                samples_per_s_after_first=(sum(e["samples"] for e in epochs[1:]) / max(sum(ts[1:]), 1e-12)
                                           if len(epochs) > 1 else None))


# ---- the teacher phase ------------------------------------------------------------------------------------------

def train_teacher(args, pgc, device):
    Nv, Dv = pgc["v_feat"].shape
    Nm, Dm = pgc["m_feat"].shape
    cfg = M.Config(student=False, lr=args.lr_teacher, weight_decay=args.weight_decay, batch=args.batch,
                   L=args.latent, match=args.match, k=args.k, tau=args.tau)
    net = M.init_spec_(M.Teacher(Dv, Dm, cfg.L, cfg.dropout)).to(device)
    opt, opt_desc = make_optimizer(net, cfg, args.form, device)
    step = Step(lambda xv, xm: net.forward_loss(xv, xm, cfg), not args.no_compile if args.form == "fast" else None)
    pairs = pgc["train"]
    P = pairs.shape[0]
    val = pgc["val"]
    if args.form == "published":
        loader = torch.utils.data.DataLoader(PGCDataset(pairs, Nm, not args.no_unused_negative), batch_size=cfg.batch,
                                             shuffle=True, drop_last=False, num_workers=args.workers)
        v_feat, m_feat = pgc["v_feat"], pgc["m_feat"]
        val_v, val_m = v_feat, m_feat
    else:
        v_feat = torch.from_numpy(pgc["v_feat"]).to(device)
        m_feat = torch.from_numpy(pgc["m_feat"]).to(device)
        pv = torch.from_numpy(pairs[:, 0]).to(device)
        pm = torch.from_numpy(pairs[:, 1]).to(device)
        val_v, val_m = v_feat, m_feat
    print("teacher: %d training pairs, %d val pairs, %d videos x %d, %d musics x %d; L %d, batch %d, k %d, %s, %s, %s"
          % (P, val.shape[0], Nv, Dv, Nm, Dm, cfg.L, cfg.batch, cfg.k, cfg.match, opt_desc, step.mode))
    epochs, best, best_state, best_epoch = [], -1.0, None, 0
    for ep in range(1, args.teacher_epochs + 1):
        net.train()
        sync(device)
        t0 = time.perf_counter()
        n, nb, skipped = 0, 0, 0
        loss_sum = torch.zeros((), device=device) if args.form == "fast" else 0.0
        if args.form == "published":
            for vids, mids in loader:
                if vids.shape[0] < 2:
                    skipped += 1
                    continue
                x_v = torch.from_numpy(v_feat[vids.numpy()]).to(device)
                x_m = torch.from_numpy(m_feat[mids.numpy()]).to(device)
                opt.zero_grad()
                loss, _ = step(x_v, x_m)
                loss.backward()
                opt.step()
                loss_sum += loss.item()
                n += x_v.shape[0]
                nb += 1
        else:
            perm = torch.randperm(P, device=device)
            for b in range(0, P, cfg.batch):
                idx = perm[b:b + cfg.batch]
                if idx.numel() < 2:
                    skipped += 1
                    continue
                x_v = v_feat.index_select(0, pv.index_select(0, idx))
                x_m = m_feat.index_select(0, pm.index_select(0, idx))
                opt.zero_grad(set_to_none=True)
                loss, _ = step(x_v, x_m)
                loss.backward()
                opt.step()
                loss_sum += loss.detach()
                n += idx.numel()
                nb += 1
        loss_mean = float(loss_sum) / max(nb, 1)
        sync(device)
        t1 = time.perf_counter()
        res = M.eval_full_rank(net, val_v, val_m, val[:, 0], val[:, 1], Ks=(1, 5, 10, 25))
        sync(device)
        t2 = time.perf_counter()
        r25 = res["recall"][25]
        is_best = r25 > best
        if is_best:
            best, best_epoch = r25, ep
            best_state = copy.deepcopy(net.state_dict())
        rec = dict(epoch=ep, train_s=t1 - t0, samples=n, batches=nb, skipped_batches=skipped,
                   samples_per_s=n / max(t1 - t0, 1e-12), loss=loss_mean, val_s=t2 - t1,
                   val_recall={str(k): v for k, v in res["recall"].items()}, val_tie_rows=res["tie_rows"],
                   best=is_best)
        epochs.append(rec)
        print("teacher epoch %d/%d: train %.3f s (%.0f samples/s, %d batches%s), loss %.6g | val %.3f s: "
              "Recall@1 %.4f @5 %.4f @10 %.4f @25 %.4f%s"
              % (ep, args.teacher_epochs, rec["train_s"], rec["samples_per_s"], nb,
                 ", %d batch of 1 row skipped" % skipped if skipped else "", loss_mean, rec["val_s"],
                 res["recall"][1], res["recall"][5], res["recall"][10], r25, "  *best" if is_best else ""))
        sys.stdout.flush()
    if best_state is not None:
        net.load_state_dict(best_state)
    out = dict(epochs=epochs, best_epoch=best_epoch, best_val_recall25=best, optimizer=opt_desc, step=step.mode,
               config=vars(cfg), training_pairs=P, **summarize(epochs))
    return net, out


# ---- the student phase ------------------------------------------------------------------------------------------

def train_student(args, ugc, teacher, device):
    Nv, Dv = ugc["v_feat"].shape
    Nm, Dm = ugc["m_feat"].shape
    G = ugc["G"]
    cfg = M.Config(student=True, lr=args.lr_student, weight_decay=args.weight_decay, batch=args.batch, L=args.latent,
                   match=args.match, k=args.k, tau=args.tau, distill=args.distill, alpha=args.alpha)
    net = M.init_spec_(M.Student(Dv, Dm, G, cfg.L, cfg.dropout)).to(device)
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt, opt_desc = make_optimizer(net, cfg, args.form, device)
    video, music, prior = ugc["train_video"], ugc["train_music"], ugc["train_prior"]
    P = video.shape[0]
    val = ugc["val"]
    cache_s = 0.0
    if args.form == "published":
        loader = torch.utils.data.DataLoader(MatchingDataset(video, music, prior, Nm, not args.no_unused_negative),
                                             batch_size=cfg.batch, shuffle=True, drop_last=False,
                                             num_workers=args.workers)
        v_feat, m_feat = ugc["v_feat"], ugc["m_feat"]
        step = Step(lambda xv, xm, pr: net.forward_loss(xv, xm, pr, cfg, teacher=teacher), None)
    else:
        v_feat = torch.from_numpy(ugc["v_feat"]).to(device)
        m_feat = torch.from_numpy(ugc["m_feat"]).to(device)
        tv = torch.from_numpy(video).to(device)
        tm = torch.from_numpy(music).to(device)
        tp = torch.from_numpy(prior).to(device)
        # the frozen teacher's eval-mode posteriors of every music and video, once per run
        sync(device)
        c0 = time.perf_counter()
        with torch.no_grad():
            post_m = [teacher.m_encoder(m_feat[i:i + 8192]) for i in range(0, Nm, 8192)]
            post_v = [teacher.v_encoder(v_feat[i:i + 8192]) for i in range(0, Nv, 8192)]
            tmu_m = torch.cat([a for a, _ in post_m]); tlv_m = torch.cat([b for _, b in post_m])  # noqa: E702
            tmu_v = torch.cat([a for a, _ in post_v]); tlv_v = torch.cat([b for _, b in post_v])  # noqa: E702
        sync(device)
        cache_s = time.perf_counter() - c0

        def _fast(xv, xm, pr, iv, im):
            tpost = (tmu_m.index_select(0, im), tlv_m.index_select(0, im), tmu_v.index_select(0, iv),
                     tlv_v.index_select(0, iv))
            return net.forward_loss(xv, xm, pr, cfg, teacher_post=tpost)
        step = Step(_fast, not args.no_compile)
    print("student: %d training rows, %d val rows, %d videos x %d, %d musics x %d, G %d; batch %d, k %d, %s, "
          "distill %s, %s, %s%s"
          % (P, val["video"].shape[0], Nv, Dv, Nm, Dm, G, cfg.batch, cfg.k, cfg.match, cfg.distill, opt_desc,
             step.mode, ", teacher posteriors cached in %.3f s" % cache_s if args.form == "fast" else ""))
    epochs, best, best_state, best_epoch = [], -1.0, None, 0
    for ep in range(1, args.student_epochs + 1):
        net.train()
        sync(device)
        t0 = time.perf_counter()
        n, nb, skipped = 0, 0, 0
        loss_sum = torch.zeros((), device=device) if args.form == "fast" else 0.0
        if args.form == "published":
            for vids, mids, pr in loader:
                if vids.shape[0] < 2:
                    skipped += 1
                    continue
                x_v = torch.from_numpy(v_feat[vids.numpy()]).to(device)
                x_m = torch.from_numpy(m_feat[mids.numpy()]).to(device)
                pr = pr.to(device)
                opt.zero_grad()
                loss, _ = step(x_v, x_m, pr)
                loss.backward()
                opt.step()
                loss_sum += loss.item()
                n += x_v.shape[0]
                nb += 1
        else:
            perm = torch.randperm(P, device=device)
            for b in range(0, P, cfg.batch):
                idx = perm[b:b + cfg.batch]
                if idx.numel() < 2:
                    skipped += 1
                    continue
                iv, im = tv.index_select(0, idx), tm.index_select(0, idx)
                x_v, x_m = v_feat.index_select(0, iv), m_feat.index_select(0, im)
                opt.zero_grad(set_to_none=True)
                loss, _ = step(x_v, x_m, tp.index_select(0, idx), iv, im)
                loss.backward()
                opt.step()
                loss_sum += loss.detach()
                n += idx.numel()
                nb += 1
        loss_mean = float(loss_sum) / max(nb, 1)
        sync(device)
        t1 = time.perf_counter()
        res = M.eval_negatives(net, v_feat, m_feat, ugc["prior_mean"], val["video"], val["positive"],
                               val["negatives"], val["weights"], Ks=(10, 25))
        sync(device)
        t2 = time.perf_counter()
        r25 = res["recall"][25]
        is_best = r25 > best
        if is_best:
            best, best_epoch = r25, ep
            best_state = copy.deepcopy(net.state_dict())
        rec = dict(epoch=ep, train_s=t1 - t0, samples=n, batches=nb, skipped_batches=skipped,
                   samples_per_s=n / max(t1 - t0, 1e-12), loss=loss_mean, val_s=t2 - t1,
                   val_recall={str(k): v for k, v in res["recall"].items()},
                   val_ndcg={str(k): v for k, v in res["ndcg"].items()}, val_tie_rows=res["tie_rows"], best=is_best)
        epochs.append(rec)
        print("student epoch %d/%d: train %.3f s (%.0f samples/s, %d batches%s), loss %.6g | val %.3f s: "
              "Recall@10 %.4f @25 %.4f NDCG@25 %.4f%s"
              % (ep, args.student_epochs, rec["train_s"], rec["samples_per_s"], nb,
                 ", %d batch of 1 row skipped" % skipped if skipped else "", loss_mean, rec["val_s"],
                 res["recall"][10], r25, res["ndcg"][25], "  *best" if is_best else ""))
        sys.stdout.flush()
    if best_state is not None:
        net.load_state_dict(best_state)
    out = dict(epochs=epochs, best_epoch=best_epoch, best_val_recall25=best, optimizer=opt_desc, step=step.mode,
               config=vars(cfg), training_rows=P, teacher_cache_s=cache_s, **summarize(epochs))
    return net, out, (v_feat, m_feat)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("root", help="dataset root holding data_pgc/ and data_matching/")
    p.add_argument("--form", choices=("published", "fast"), default="fast")
    p.add_argument("--epochs", type=int, default=50, help="epochs of each phase (default 50)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="override --epochs for the teacher")
    p.add_argument("--student-epochs", type=int, default=None, help="override --epochs for the student")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--json", default=None, help="write the per-epoch numbers and the test report here")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--latent", type=int, default=128)
    p.add_argument("--k", type=int, default=40)
    p.add_argument("--match", choices=M.MATCH_VARIANTS, default="published")
    p.add_argument("--distill", choices=M.DISTILL_VARIANTS, default="published")
    p.add_argument("--tau", type=float, default=0.1, help="softmax variant temperature")
    p.add_argument("--alpha", type=float, default=5e-5)
    p.add_argument("--lr-teacher", type=float, default=1e-4)
    p.add_argument("--lr-student", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=0, help="published form: DataLoader num_workers (default 0)")
    p.add_argument("--no-unused-negative", action="store_true",
                   help="published form: skip the per-sample unused negative draw")
    p.add_argument("--no-compile", action="store_true", help="fast form: never use torch.compile")
    a = p.parse_args(argv)
    a.teacher_epochs = a.epochs if a.teacher_epochs is None else a.teacher_epochs
    a.student_epochs = a.epochs if a.student_epochs is None else a.student_epochs
    if a.batch < 2:
        p.error("--batch must be at least 2")
    for name in ("epochs", "teacher_epochs", "student_epochs"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name.replace("_", "-"))
    if a.json:  # checked before any training: a regular file (or none yet) in an existing, writable folder
        folder = os.path.dirname(os.path.abspath(a.json))
        if os.path.exists(a.json) and not os.path.isfile(a.json):
            p.error("--json '%s' exists and is not a regular file" % a.json)
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            p.error("--json '%s': the folder %s does not exist or is not writable" % (a.json, folder))
    return a


def main(argv):
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("train.py: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    print("train.py: form %s, torch %s, device %s, %d threads, seed %d, root %s"
          % (args.form, torch.__version__, args.device, torch.get_num_threads(), args.seed, args.root))
    t0 = time.perf_counter()
    pgc = D.load_pgc(args.root)
    ugc = D.load_matching(args.root)
    load_s = time.perf_counter() - t0
    print("loaded the dataset in %.3f s" % load_s)
    teacher, tout = train_teacher(args, pgc, device)
    student, sout, (v_feat, m_feat) = train_student(args, ugc, teacher, device)
    te = ugc["test"]
    t1 = time.perf_counter()
    res = M.eval_negatives(student, v_feat, m_feat, ugc["prior_mean"], te["video"], te["positive"], te["negatives"],
                           te["weights"], Ks=(10, 15, 20, 25))
    test_s = time.perf_counter() - t1
    print("test (student epoch %d): %s | %s | %d rows, %d ties at the positive, %d listing it among negatives"
          % (sout["best_epoch"], " ".join("Recall@%d %.4f" % kv for kv in res["recall"].items()),
             " ".join("NDCG@%d %.4f" % kv for kv in res["ndcg"].items()), res["rows"], res["tie_rows"],
             res["rows_positive_in_negatives"]))
    for name, o in (("teacher", tout), ("student", sout)):
        if o["epochs"]:
            print("%s: mean epoch %.3f s, median %.3f s, %.0f samples/s (%s after the first epoch)"
                  % (name, o["epoch_s_mean"], o["epoch_s_median"], o["samples_per_s"],
                     "%.0f" % o["samples_per_s_after_first"] if o["samples_per_s_after_first"] else "n/a"))
    if args.json:
        out = dict(tool="bench/torch_ref/train.py", form=args.form, torch=torch.__version__, numpy=np.__version__,
                   python=platform.python_version(), device=args.device,
                   device_name=(torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()),
                   threads=torch.get_num_threads(), seed=args.seed, root=os.path.abspath(args.root),
                   args=vars(args), load_s=load_s,
                   data=dict(pgc_videos=int(pgc["v_feat"].shape[0]), D_v=int(pgc["v_feat"].shape[1]),
                             pgc_musics=int(pgc["m_feat"].shape[0]), D_m=int(pgc["m_feat"].shape[1]),
                             ugc_videos=int(ugc["v_feat"].shape[0]), ugc_musics=int(ugc["m_feat"].shape[0]),
                             G=ugc["G"], ugc_train_rows=int(ugc["train_video"].shape[0])),
                   teacher=tout, student=sout,
                   test=dict(recall={str(k): v for k, v in res["recall"].items()},
                             ndcg={str(k): v for k, v in res["ndcg"].items()}, rows=res["rows"],
                             tie_rows=res["tie_rows"], rows_positive_in_negatives=res["rows_positive_in_negatives"],
                             eval_s=test_s))
        tmp = "%s.tmp.%d" % (args.json, os.getpid())
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.json)
        print("wrote %s" % args.json)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as e:  # bad data or paths: one line, no traceback
        print("train.py: error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("train.py: interrupted", file=sys.stderr)
        sys.exit(130)
