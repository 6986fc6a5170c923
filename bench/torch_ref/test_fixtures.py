#!/usr/bin/env python3
"""bench/torch_ref/test_fixtures.py -- our PyTorch DebCM (model.py) against the published code's numbers.

    python3 bench/torch_ref/test_fixtures.py [FIXTURE_DIR]

FIXTURE_DIR defaults to tests/data/fixtures/tiny (relative to the repository root); shared/fixtures/paper_dims has
the same layout minus the *_steps folders, which are then skipped. The networks are built from each fixture's
initial parameters and the recorded draws (dropout keep-masks, reparameterisation noise) are replayed, then:
  teacher/, student/   one training step: every scalar of meta.json (1e-5 relative), every gradient of grad/
                       (1e-4, |a-b|/|b| per tensor), the BN running statistics after the forward (1e-5 relative
                       max), and every tensor after one Adam step (statistics 1e-5; parameters: |d| <= 2*lr and at
                       most 1% of the elements beyond 1e-3*lr, the rule of fixtures/README for near-zero gradients);
  teacher_steps/, student_steps/   three steps (12, 12, 7 rows) with one optimiser: the losses and final/;
  student_eval/, teacher_eval/     weighted Recall/NDCG@K (100 negatives) and full-ranking Recall@K (1e-5).
Prints one line per check and a table of the worst error per group. Exit 0 pass, 1 fail, 77 skipped (no torch or
no NumPy in this Python).
"""
import json
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # the CTest registration reports this as skipped
    print("test_fixtures: %s: skipped" % e)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

SCALAR_TOL = 1e-5
GRAD_TOL = 1e-4
STAT_TOL = 1e-5

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRAW_NAMES = ("eps_m", "eps_v", "mask_m_encoder", "mask_v_encoder", "mask_m_decoder", "mask_video_v_decoder")


class Checks:
    def __init__(self):
        self.groups = {}   # group -> [worst, tolerance, unit]
        self.failures = []

    def note(self, group, err, tol, unit, ok, msg):
        g = self.groups.setdefault(group, [0.0, tol, unit])
        if not (err <= g[0]):
            g[0] = err
        if not ok:
            self.failures.append("%s: %s" % (group, msg))
            print("  FAIL %s: %s" % (group, msg))

    def scalar(self, group, what, got, want, tol=SCALAR_TOL):
        rel = abs(got - want) / max(abs(want), 1e-30) if want != 0.0 else abs(got)
        print("  %-14s %-22s torch % .9g  published % .9g  rel %.2g" % (group, what, got, want, rel))
        self.note(group, rel, tol, "relative", rel <= tol, "%s = %.9g, published %.9g (rel %.3g)" % (what, got, want, rel))


def load(fx, sub, name):
    return np.load(os.path.join(fx, sub, name + ".npy"), allow_pickle=True)


def meta(fx, sub):
    with open(os.path.join(fx, sub, "meta.json")) as f:
        return json.load(f)


def state_from_dir(fx, sub, net):
    """A state_dict for `net` from sub/<name>.npy; every file must name a tensor of the network, and every
    parameter and running statistic must have its file (num_batches_tracked is not in the fixtures)."""
    want = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    files = sorted(f[:-4] for f in os.listdir(os.path.join(fx, sub)) if f.endswith(".npy"))
    extra = [f for f in files if f not in want]
    missing = [k for k in want if k not in files]
    if extra or missing:
        raise SystemExit("%s/%s: files without a tensor %s, tensors without a file %s" % (fx, sub, extra, missing))
    return {k: torch.from_numpy(np.ascontiguousarray(load(fx, sub, k), dtype=np.float32)).reshape(want[k].shape)
            for k in files}


def load_net(fx, sub, net):
    net.load_state_dict(state_from_dir(fx, sub, net), strict=False)
    return net


def dims(fx, kind):
    m = meta(fx, kind)
    return m, dict(D_v=m["D_v"], D_m=m["D_m"], L=m["L"], G=m.get("G", 0))


def build(fx, kind, m, d):
    student = kind == "student"
    cfg = M.Config(student=student, lr=m["lr"], weight_decay=m["weight_decay"], L=d["L"],
                   dropout=m.get("dropout", 0.2), margin=m["margin"], k=m["k"],
                   **({"alpha": m["alpha"]} if student else {}))
    if student:
        net = M.Student(d["D_v"], d["D_m"], d["G"], d["L"], cfg.dropout)
    else:
        net = M.Teacher(d["D_v"], d["D_m"], d["L"], cfg.dropout)
    return cfg, net


def step_inputs(fx, sub, student):
    t = lambda n: torch.from_numpy(np.ascontiguousarray(load(fx, sub, n), dtype=np.float32))  # noqa: E731
    draws = {n: t(n) for n in DRAW_NAMES}
    return t("x_v"), t("x_m"), (t("user_prior") if student else None), draws


def run_step(net, cfg, teacher, x_v, x_m, prior, draws):
    net.train()
    if teacher is None:
        return net.forward_loss(x_v, x_m, cfg, draws=draws)
    return net.forward_loss(x_v, x_m, prior, cfg, teacher=teacher, draws=draws)


def check_grads(C, fx, sub, net, group):
    gdir = os.path.join(sub, "grad")
    files = sorted(f[:-4] for f in os.listdir(os.path.join(fx, gdir)) if f.endswith(".npy"))
    params = dict(net.named_parameters())
    C.note(group, 0.0, GRAD_TOL, "|a-b|/|b|", set(files) == set(params),
           "gradient files %s vs parameters %s" % (sorted(set(files) ^ set(params)), ""))
    for name, p in params.items():
        if name not in files:
            continue
        want = load(fx, gdir, name).astype(np.float64).reshape(-1)
        got = (p.grad.detach().double().reshape(-1).numpy() if p.grad is not None else np.zeros_like(want))
        den = np.linalg.norm(want)
        err = np.linalg.norm(got - want) / den if den > 0 else np.linalg.norm(got)
        C.note(group, err, GRAD_TOL, "|a-b|/|b|", err <= GRAD_TOL, "gradient of %s off by %.3g" % (name, err))


def check_state(C, fx, sub, net, lr, steps, group, want_params=True):
    """Running statistics (relative max) and, when want_params, parameters in the Adam tolerance."""
    sd = net.state_dict()
    pnames = set(n for n, _ in net.named_parameters())
    files = sorted(f[:-4] for f in os.listdir(os.path.join(fx, sub)) if f.endswith(".npy"))
    worst_step, off, total = 0.0, 0, 0
    for name in files:
        if name not in sd:
            C.note(group + " stats", 1.0, STAT_TOL, "relative", False, "%s/%s names no tensor" % (sub, name))
            continue
        want = load(fx, sub, name).astype(np.float64).reshape(-1)
        got = sd[name].detach().double().reshape(-1).numpy()
        if name in pnames:
            if not want_params:
                continue
            e = np.abs(got - want)
            worst_step = max(worst_step, float(e.max()) / lr)
            off += int((e > 1e-3 * lr + 1e-6 * np.abs(want)).sum())
            total += e.size
        else:
            den = np.abs(want).max()
            err = float(np.abs(got - want).max() / den) if den > 0 else float(np.abs(got).max())
            C.note(group + " stats", err, STAT_TOL, "relative max", err <= STAT_TOL, "%s off by %.3g" % (name, err))
    if want_params:
        print("  %-14s parameters vs %s: worst |d| = %.3g*lr, %d of %d elements beyond 1e-3*lr"
              % (group, sub, worst_step, off, total))
        C.note(group + " params", worst_step, 2.0 * steps, "max |d| / lr", worst_step <= 2.0 * steps + 1e-3,
               "a parameter differs by %.3g*lr" % worst_step)
        C.note(group + " params off", off / max(total, 1), 0.01, "share > 1e-3*lr", off * 100 <= total,
               "%d of %d parameters beyond 1e-3*lr" % (off, total))


def test_one_step(C, fx, kind):
    print("%s: one training step (replayed draws)" % kind)
    student = kind == "student"
    m, d = dims(fx, kind)
    cfg, net = build(fx, kind, m, d)
    load_net(fx, kind + "/init", net)
    teacher = None
    if student:
        teacher = load_net(fx, "student/teacher", M.Teacher(d["D_v"], d["D_m"], d["L"], cfg.dropout)).eval()
    x_v, x_m, prior, draws = step_inputs(fx, kind, student)
    opt = M.make_adam(net, cfg.lr, cfg.weight_decay)
    opt.zero_grad()
    loss, t = run_step(net, cfg, teacher, x_v, x_m, prior, draws)
    sc = m["scalars"]
    C.scalar(kind, "recon", float(t["recon"]), sc["recon"])
    C.scalar(kind, "kl_m", float(t["kl_m"]), sc["kl_m"])
    C.scalar(kind, "kl_v", float(t["kl_v"]), sc["kl_v"])
    if student:
        C.scalar(kind, "video_term", float(t["video"]), sc["video_term"])
        C.scalar(kind, "distill_m", float(t["distill_m"]), sc["distill_m"])
        C.scalar(kind, "distill_v", float(t["distill_v"]), sc["distill_v"])
    else:
        C.scalar(kind, "neg_video_term", -float(t["video"]), sc["neg_video_term"])
    C.scalar(kind, "loss", float(loss), sc["loss"])
    loss.backward()
    check_grads(C, fx, kind, net, kind + " grad")
    check_state(C, fx, kind + "/after_forward", net, cfg.lr, 1, kind, want_params=False)
    opt.step()
    check_state(C, fx, kind + "/after_adam1", net, cfg.lr, 1, kind)


def test_three_steps(C, fx, kind):
    sub = kind + "_steps"
    if not os.path.isdir(os.path.join(fx, sub)):
        print("%s: absent in %s, skipped" % (sub, fx))
        return
    print("%s: three training steps with one optimiser" % sub)
    student = kind == "student"
    m, d = dims(fx, kind)
    ms = meta(fx, sub)
    m = dict(m, lr=ms["lr"], weight_decay=ms["weight_decay"], k=ms["k"])
    cfg, net = build(fx, kind, m, d)
    load_net(fx, sub + "/init", net)
    teacher = None
    if student:
        teacher = load_net(fx, "student/teacher", M.Teacher(d["D_v"], d["D_m"], d["L"], cfg.dropout)).eval()
    opt = M.make_adam(net, cfg.lr, cfg.weight_decay)
    for s, (B, want) in enumerate(zip(ms["batch_sizes"], ms["losses"])):
        x_v, x_m, prior, draws = step_inputs(fx, "%s/step%d" % (sub, s), student)
        if x_v.shape[0] != B:
            C.note(sub, 1.0, SCALAR_TOL, "relative", False, "step %d has %d rows, meta says %d" % (s, x_v.shape[0], B))
        opt.zero_grad()
        loss, _ = run_step(net, cfg, teacher, x_v, x_m, prior, draws)
        C.scalar(sub, "loss step %d (B %d)" % (s, B), float(loss), want)
        loss.backward()
        opt.step()
    check_state(C, fx, sub + "/final", net, cfg.lr, 3, sub)


def check_metric(C, group, what, got, want):
    err = abs(got - want) / max(abs(want), 1e-12) if want != 0.0 else abs(got)
    print("  %-14s %-10s torch %.9f  published %.9f" % (group, what, got, want))
    C.note(group, err, SCALAR_TOL, "relative", err <= SCALAR_TOL, "%s = %.9g, published %.9g" % (what, got, want))


def test_student_eval(C, fx):
    print("student_eval: 100-negative protocol with the student's after_adam1 weights")
    m, d = dims(fx, "student")
    cfg, net = build(fx, "student", m, d)
    load_net(fx, "student/after_adam1", net)
    em = meta(fx, "student_eval")
    rows = load(fx, "student_eval", "rows")
    video = np.array([int(r[0]) for r in rows], dtype=np.int64)
    pos = np.array([int(r[1]) for r in rows], dtype=np.int64)
    neg = np.stack([np.asarray(r[2], dtype=np.int64) for r in rows])
    w = load(fx, "student_eval", "weights").astype(np.float64)
    prior = load(fx, "student", "user_prior_mean").astype(np.float32)
    m_feat = load(fx, "student_eval", "m_feat").astype(np.float32)
    v_feat = load(fx, "student_eval", "v_feat").astype(np.float32)
    Ks = sorted(int(k) for k in em["metrics"])
    res = M.eval_negatives(net, v_feat, m_feat, prior, video, pos, neg, w, Ks)
    for K in Ks:
        check_metric(C, "student_eval", "Recall@%d" % K, res["recall"][K], em["metrics"][str(K)]["recall"])
        check_metric(C, "student_eval", "NDCG@%d" % K, res["ndcg"][K], em["metrics"][str(K)]["ndcg"])
    print("  student_eval   %d rows, %d with a tie at the positive, %d listing it among negatives"
          % (res["rows"], res["tie_rows"], res["rows_positive_in_negatives"]))


def test_teacher_eval(C, fx):
    print("teacher_eval: full ranking with the teacher's after_adam1 weights")
    m, d = dims(fx, "teacher")
    cfg, net = build(fx, "teacher", m, d)
    load_net(fx, "teacher/after_adam1", net)
    em = meta(fx, "teacher_eval")
    val = np.asarray(load(fx, "teacher_eval", "val"), dtype=np.int64).reshape(-1, 2)
    Ks = sorted(int(k) for k in em["recall"])
    res = M.eval_full_rank(net, load(fx, "teacher_eval", "v_feat").astype(np.float32),
                           load(fx, "teacher_eval", "m_feat").astype(np.float32), val[:, 0], val[:, 1], Ks)
    for K in Ks:
        check_metric(C, "teacher_eval", "Recall@%d" % K, res["recall"][K], em["recall"][str(K)])
    print("  teacher_eval   %d rows, %d with a tie at the true music" % (res["rows"], res["tie_rows"]))


def main(argv):
    fx = argv[1] if len(argv) > 1 else os.path.join(REPO, "tests", "data", "fixtures", "tiny")
    if not os.path.isdir(fx):
        print("test_fixtures: %s is absent: skipped" % fx)
        return 77
    torch.set_num_threads(1)  # the reductions' order does not depend on the machine's core count
    print("test_fixtures: torch %s, numpy %s, fixtures %s" % (torch.__version__, np.__version__, fx))
    C = Checks()
    for fn, arg in ((test_one_step, "teacher"), (test_one_step, "student"), (test_three_steps, "teacher"),
                    (test_three_steps, "student"), (test_student_eval, None), (test_teacher_eval, None)):
        try:
            fn(C, fx, arg) if arg else fn(C, fx)
        except Exception as e:  # a crash in one group fails the run but the others still report
            C.note(fn.__name__ + (" " + arg if arg else ""), float("inf"), 0.0, "-", False, "raised %r" % (e,))
    print()
    print("%-28s %12s %10s  %-16s %s" % ("group", "worst", "tolerance", "unit", "result"))
    for g, (worst, tol, unit) in C.groups.items():
        ok = not any(f.startswith(g + ":") for f in C.failures)
        print("%-28s %12.3g %10.3g  %-16s %s" % (g, worst, tol, unit, "ok" if ok else "FAIL"))
    if C.failures:
        print("\ntest_fixtures: %d check(s) failed" % len(C.failures))
        return 1
    print("\ntest_fixtures: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
