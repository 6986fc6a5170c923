#!/usr/bin/python3
"""bench/compare.py -- debcm beside the two PyTorch forms (bench/torch_ref) on one dataset, in one run, and each
beside the hardware's floor.

    /usr/bin/python3 bench/compare.py ROOT --epochs N [--threads N] [--device cpu|cuda] [--build DIR] [--out DIR]
        [--skip debcm,published,fast] [--seeds 1[,2,...]] [--timeout S]

Children, in this order (logs in OUT/logs/):
  BUILD/debcm version                           the OpenBLAS configuration
  BUILD/bench_epoch ROOT --epochs N --json ...  debcm's epoch and validation times (median of N after a warm-up)
  BUILD/debcm run ROOT --teacher-epochs N --student-epochs N --seed S ...   debcm's metrics after N epochs
  train.py ROOT --form published|fast ...       both PyTorch forms: epoch times and metrics after N epochs
Per phase (teacher epoch, student epoch, the two validations, the whole job) it prints samples/s, ms, the time as a
multiple of debcm's, and the time as a multiple of the floor max(FLOP floor, byte floor); the peak memory of each
process; the metrics of each system after N epochs and whether they agree. Writes OUT/compare.json (everything)
and OUT/compare.md (the tables, naming the machine), and prints the Markdown last. Exit status: 0 every child
succeeded, 1 a child failed (the rest still ran; its exit status and last stderr lines are reported), 2 bad usage
(a missing ROOT or BUILD).
"""
import argparse
import datetime
import json
import math
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_PY = os.path.join(HERE, "torch_ref", "train.py")
SYSTEMS = ("debcm", "published", "fast")
LABEL = {"debcm": "debcm", "published": "torch published", "fast": "torch fast"}
BATCH, LATENT = 1024, 128          # the published sizes; bench_epoch and the defaults of debcm run / train.py
MAX_BENCH_EPOCHS = 32              # bench_epoch's --epochs limit
FEW_EPOCHS = 10                    # below this the metrics are early-training values: agreement is not judged


def die(msg):
    print("compare.py: %s" % msg, file=sys.stderr)
    sys.exit(2)


def write_atomic(path, text):
    """path gets text whole or not at all: a temporary file beside it, fsync, rename."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- children ---------------------------------------------------------------------------------------------------

class Child:
    """One child process: command, exit status, wall time, its own peak RSS (os.wait4), logs."""

    running = None  # the Popen being waited for (stopped on Ctrl-C)

    def __init__(self, name, cmd, logdir):
        self.name, self.cmd = name, [str(c) for c in cmd]
        self.out_path = os.path.join(logdir, name + ".out")
        self.err_path = os.path.join(logdir, name + ".err")
        self.rc, self.wall_s, self.maxrss_bytes, self.error = None, None, None, None

    def run(self, timeout=None):
        shown = ["<script>" if "\n" in c else c for c in self.cmd]
        print("compare.py: running %s: %s" % (self.name, " ".join(shlex.quote(c) for c in shown)), flush=True)
        t0 = time.perf_counter()
        try:
            with open(self.out_path, "w") as fo, open(self.err_path, "w") as fe:
                p = subprocess.Popen(self.cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        except OSError as e:
            self.rc, self.error = 127, "could not start: %s" % e
            print("compare.py: %s failed: %s" % (self.name, self.error), flush=True)
            return False
        timed_out = False
        Child.running = p
        while True:  # os.wait4: this child's own rusage (RUSAGE_CHILDREN would mix the children's peaks)
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.perf_counter() - t0
            if timeout and elapsed > timeout and not timed_out:
                timed_out = True  # os.kill, not Popen.send_signal: that polls, and a poll would reap the child
                os.kill(p.pid, signal.SIGTERM)
            elif timed_out and elapsed > timeout + 5:
                os.kill(p.pid, signal.SIGKILL)  # still there 5 s after SIGTERM (not reaped yet: the pid is ours)
            time.sleep(0.05)
        Child.running = None
        self.wall_s = time.perf_counter() - t0
        self.rc = os.waitstatus_to_exitcode(status)
        p.returncode = self.rc  # reaped here; keep Popen from waiting again
        self.maxrss_bytes = ru.ru_maxrss * 1024  # Linux: KiB
        if timed_out:
            self.error = "timed out after %.0f s (--timeout)" % timeout
        elif self.rc != 0:
            self.error = ("killed by signal %d" % -self.rc) if self.rc < 0 else "exit status %d" % self.rc
        print("compare.py: %s %s in %.1f s, peak RSS %.0f MB" % (self.name, "ok" if self.ok else "FAILED (%s)" % self.error,
              self.wall_s, self.maxrss_bytes / 1e6), flush=True)
        return self.ok

    @property
    def ok(self):
        return self.rc == 0 and self.error is None

    def fail(self, why):
        """rc 0 but unusable output (a missing or bad JSON)."""
        if self.error is None:
            self.error = why
            print("compare.py: %s FAILED: %s" % (self.name, why), flush=True)

    def tail(self, n=8, which="err"):
        try:
            with open(self.err_path if which == "err" else self.out_path, errors="replace") as f:
                return f.read().splitlines()[-n:]
        except OSError:
            return []

    def stdout(self):
        try:
            with open(self.out_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def record(self):
        return dict(name=self.name, cmd=self.cmd, rc=self.rc, ok=self.ok, error=self.error, wall_s=self.wall_s,
                    peak_rss_bytes=self.maxrss_bytes, stdout_log=self.out_path, stderr_log=self.err_path,
                    stderr_tail=None if self.ok else self.tail())


def load_json(child, path):
    if not child.ok:
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        child.fail("no usable JSON at %s (%s)" % (path, e))
        return None


# ---- the dataset's sizes (from the .npy headers; no feature is loaded) -------------------------------------------

def npy_shape(path):
    import numpy as np
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(f)
    return shape


def dataset_sizes(root):
    """The sizes the floors need. Run in a child (see main): this process stays small, because a child's ru_maxrss
    starts from its parent's peak RSS (vfork + exec keeps the high-water mark)."""
    import numpy as np
    pgc, ugc = os.path.join(root, "data_pgc"), os.path.join(root, "data_matching")
    s = {}
    s["pgc_videos"], s["D_v"] = npy_shape(os.path.join(pgc, "mv_video_resnet_features.npy"))
    s["pgc_musics"], vg = npy_shape(os.path.join(pgc, "vggish_features.npy"))
    s["D_m"] = vg + npy_shape(os.path.join(pgc, "opensmile_features_norm.npy"))[1]
    s["pgc_train"] = npy_shape(os.path.join(pgc, "train.npy"))[0]
    val = np.load(os.path.join(pgc, "val.npy"), allow_pickle=True)
    s["pgc_val"] = int(val.shape[0])
    s["pgc_val_videos"] = int(len(set(int(r[0]) for r in val)))
    s["ugc_videos"], s["D_v_ugc"] = npy_shape(os.path.join(ugc, "visual_features_resnet_V.npy"))
    s["ugc_musics"], vg = npy_shape(os.path.join(ugc, "music_features.npy"))
    s["D_m_ugc"] = vg + npy_shape(os.path.join(ugc, "new_music_smile_features_norm.npy"))[1]
    s["ugc_train"] = npy_shape(os.path.join(ugc, "train.npy"))[0]
    s["G"] = int(np.prod(npy_shape(os.path.join(ugc, "user_prior_mean.npy"))))
    # the dataset is our own synthetic / the published layout; object arrays need pickle, as data.py loads them
    neg = np.load(os.path.join(ugc, "100neg", "val.npy"), allow_pickle=True)
    s["ugc_val"] = int(len(neg))
    s["ugc_val_videos"] = int(len(set(int(r[0]) for r in neg)))
    s["ugc_val_negatives"] = int(np.asarray(neg[0][2]).size) if len(neg) else 0
    return s


# ---- floors -----------------------------------------------------------------------------------------------------

def n_params(D_v, D_m, L, G=None):
    """Trainable parameters (model.py; the published names): per modality D an encoder (BN 2D, fc_mu and fc_logvar
    2(D L + L)) and a decoder (BN 2L, fc2 L D + D) = 3 D L + 3 D + 4 L; the student adds Cemb G L and W_c, b_c
    (2 L L + L)."""
    n = sum(3 * D * L + 3 * D + 4 * L for D in (D_v, D_m))
    if G is not None:
        n += G * L + 2 * L * L + L
    return n


def step_flops(B, D_v, D_m, L, student, cache):
    """bench/bench_epoch.c's step_gemms comment: teacher 18 B L (D_m + D_v) + 6 B^2 L; the student adds 6 B L^2
    and, without the teacher cache, the frozen teacher's encoders 4 B L (D_m + D_v)."""
    f = 18.0 * B * L * (D_m + D_v) + 6.0 * B * B * L
    if student:
        f += 6.0 * B * L * L + (0.0 if cache else 4.0 * B * L * (D_m + D_v))
    return f


def epoch_counts(rows, B):
    """(steps, rows trained): batches of B, a last batch of one row skipped (BatchNorm), as every system does."""
    steps, n = 0, 0
    for b0 in range(0, rows, B):
        b = min(B, rows - b0)
        if b > 1:
            steps, n = steps + 1, n + b
    return steps, n


def train_floor(rows, D_v, D_m, L, G, student, cache, B=BATCH):
    steps, n = epoch_counts(rows, B)
    flops = sum(step_flops(min(B, rows - b0), D_v, D_m, L, student, cache)
                for b0 in range(0, rows, B) if min(B, rows - b0) > 1)
    P = n_params(D_v, D_m, L, G if student else None)
    feat = n * (D_v + D_m) * 4
    state = steps * 4 * P * 4  # parameters, gradients, Adam m and v: 4 arrays x n_params x 4 bytes, once per step
    return dict(flops=flops, bytes=feat + state, feature_bytes=feat, param_state_bytes=state, n_params=P,
                steps=steps, samples=n)


def eval_floor(s, student, L=LATENT):
    """The validation's minimum: the mu encoders of every music and of each distinct val video, the student's W_c
    on every music, then the scores (teacher: every val pair against every music; student: each row against its
    positive and negatives). Bytes: those features once plus the encoders' mu weights."""
    if not student:
        Nm, Dm, Uv, Dv, R = s["pgc_musics"], s["D_m"], s["pgc_val_videos"], s["D_v"], s["pgc_val"]
        flops = 2.0 * L * (Nm * Dm + Uv * Dv) + 2.0 * R * Nm * L
    else:
        Nm, Dm, Uv, Dv, R = s["ugc_musics"], s["D_m_ugc"], s["ugc_val_videos"], s["D_v_ugc"], s["ugc_val"]
        flops = 2.0 * L * (Nm * Dm + Uv * Dv) + 2.0 * L * L * Nm + 2.0 * R * (s["ugc_val_negatives"] + 1) * L
    nbytes = 4 * (Nm * Dm + Uv * Dv) + 4 * L * (Dm + Dv + 2)
    return dict(flops=flops, bytes=nbytes, rows=R)


def host_bandwidth(mb=256, runs=3):
    """Best of `runs` numpy copies of a `mb` MB float32 array; counted as read + write (2 x size). Run in a child."""
    import numpy as np
    a = np.ones(mb * 1024 * 1024 // 4, dtype=np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)  # touch the pages
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * a.nbytes / best


HELPER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import compare
print(json.dumps(getattr(compare, sys.argv[2])(*sys.argv[3:])))
"""

DEVICE_BW = r"""
import sys, time, torch
a = torch.ones(256 * 1024 * 1024 // 4, device="cuda"); b = torch.empty_like(a); b.copy_(a); torch.cuda.synchronize()
best = 1e30
for _ in range(3):
    t0 = time.perf_counter(); b.copy_(a); torch.cuda.synchronize(); best = min(best, time.perf_counter() - t0)
print(2.0 * a.numel() * 4 / best)
"""

NUMPY_SGEMM = r"""
import sys, time, numpy as np
a = np.random.rand(1024, 2048).astype(np.float32); b = np.random.rand(2048, 128).astype(np.float32)
a @ b
best = 1e30
for _ in range(7):
    t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
print(2.0 * 1024 * 2048 * 128 / best / 1e9)
"""


# ---- machine ----------------------------------------------------------------------------------------------------

def machine_info():
    model, procs, cores = "unknown CPU", 0, set()
    phys = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name" and model == "unknown CPU":
                    model = v
                elif k == "processor":
                    procs += 1
                elif k == "physical id":
                    phys = v
                elif k == "core id":
                    cores.add((phys, v))
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        mem = None
    return dict(cpu=model, logical_cpus=procs or os.cpu_count(), physical_cores=len(cores) or None,
                affinity_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                mem_bytes=mem, kernel=platform.release(), python=platform.python_version(),
                loadavg_start=os.getloadavg()[0])


def openblas_config(version_text):
    for line in version_text.splitlines():
        if line.startswith("BLAS"):
            return line[len("BLAS"):].strip()
    return None


# ---- the systems' numbers ----------------------------------------------------------------------------------------

def torch_phase(js, phase):
    """ms/epoch and samples/s of one phase of train.py's JSON: the median epoch after the first (bench_epoch also
    times after a warm-up epoch), or the only epoch when there is one (then it includes the warm-up)."""
    ep = js[phase]["epochs"]
    if not ep:
        return None
    use = ep[1:] if len(ep) > 1 else ep
    ts = [e["train_s"] for e in use]
    ms = 1e3 * statistics.median(ts)
    n = statistics.median([e["samples"] for e in use])
    vals = [e["val_s"] for e in ep]
    return dict(ms=ms, samples_per_s=n / (ms / 1e3), samples=n, epochs_timed=len(use),
                includes_first_epoch=len(ep) == 1, val_ms=1e3 * statistics.median(vals),
                spread_ms=[1e3 * min(ts), 1e3 * max(ts)])


def torch_metrics(js):
    t, s, te = js["teacher"], js["student"], js["test"]
    best = s["epochs"][s["best_epoch"] - 1] if s["best_epoch"] else {}
    return {"teacher val R@25": t["best_val_recall25"], "student val R@25": s["best_val_recall25"],
            "student val NDCG@25": best.get("val_ndcg", {}).get("25"),
            "test R@25": te["recall"]["25"], "test NDCG@25": te["ndcg"]["25"],
            "test R@10": te["recall"]["10"], "test NDCG@10": te["ndcg"]["10"]}


def debcm_metrics(rep):
    return {"teacher val R@25": rep["teacher"]["val_recall@25"], "student val R@25": rep["student"]["val_recall@25"],
            "student val NDCG@25": rep["student"]["val_ndcg@25"], "test R@25": rep["test"]["recall@25"],
            "test NDCG@25": rep["test"]["ndcg@25"], "test R@10": rep["test"]["recall@10"],
            "test NDCG@10": rep["test"]["ndcg@10"]}


METRICS = ("teacher val R@25", "student val R@25", "student val NDCG@25", "test R@25", "test NDCG@25", "test R@10",
           "test NDCG@10")


def judge(metrics, epochs):
    """metrics[system] = [per-seed dict]. The between-seed spread: per metric, the pooled sample standard deviation
    over the systems with >= 2 seeds; two systems agree when their seed means differ by at most 3 standard errors
    of the difference (3 sigma sqrt(1/n_a + 1/n_b)). Not judged with one seed, or with fewer than FEW_EPOCHS epochs
    (early-training values, which the seed dominates and the systems' RNG streams differ in)."""
    out = {}
    for m in METRICS:
        per = {k: [d[m] for d in v if d.get(m) is not None] for k, v in metrics.items()}
        per = {k: v for k, v in per.items() if v}
        ss, dof = 0.0, 0
        for v in per.values():
            if len(v) >= 2:
                mu = sum(v) / len(v)
                ss += sum((x - mu) ** 2 for x in v)
                dof += len(v) - 1
        sigma = math.sqrt(ss / dof) if dof else None
        row = dict(values=per, mean={k: sum(v) / len(v) for k, v in per.items()}, pooled_seed_sd=sigma,
                   pooled_dof=dof, diff_vs_debcm={}, verdict={})
        for k in per:
            if k == "debcm" or "debcm" not in per:
                continue
            d = row["mean"][k] - row["mean"]["debcm"]
            row["diff_vs_debcm"][k] = d
            if sigma is None:
                row["verdict"][k] = "not judged (one seed)"
            elif epochs < FEW_EPOCHS:
                row["verdict"][k] = "not judged (%d epochs < %d)" % (epochs, FEW_EPOCHS)
            else:
                se = sigma * math.sqrt(1.0 / len(per[k]) + 1.0 / len(per["debcm"]))
                z = abs(d) / se if se > 0 else (0.0 if d == 0 else float("inf"))
                row["verdict"][k] = ("agree" if z <= 3.0 else "DIFFER") + " (|diff| = %.1f SE)" % z
        out[m] = row
    return out


# ---- formatting -------------------------------------------------------------------------------------------------

def f_num(x, fmt="%.0f", none="—"):
    return none if x is None else fmt % x


def f_ms(x):
    if x is None:
        return "—"
    return "%.0f" % x if x >= 100 else "%.1f" % x if x >= 10 else "%.2f" % x


def f_ratio(x):
    if x is None:
        return "—"
    return "%.2f×" % x if x < 10 else "%.1f×" % x if x < 100 else "%.0f×" % x


def md_table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ---- main -------------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("root", metavar="ROOT", help="dataset (BUILD/debcm synth --scale tt150k --out ROOT)")
    p.add_argument("--epochs", type=int, required=True,
                   help="epochs of each phase for every system (bench_epoch: N timed after a warm-up, at most 32)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads of every child, the same for all (default: the CPUs this process may use)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--build", default="build", help="the debcm build folder (default build)")
    p.add_argument("--out", default=None, help="output folder (default runs/compare-<timestamp>)")
    p.add_argument("--skip", default="", help="comma-separated systems to leave out: debcm, published, fast")
    p.add_argument("--seeds", default="1",
                   help="comma-separated seeds of the training runs (default 1); two or more let the metrics' "
                        "agreement be judged against the between-seed spread; times come from the first seed")
    p.add_argument("--timeout", type=float, default=None, help="seconds after which a child is stopped (none)")
    p.add_argument("--python", default=sys.executable, help="the Python with torch for train.py (this one)")
    a = p.parse_args(argv)
    if a.epochs < 1:
        p.error("--epochs must be at least 1")
    if a.threads < 0:
        p.error("--threads must be >= 0")
    if a.threads == 0:  # one count for every system, so the ratios compare like with like
        a.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if a.timeout is not None and a.timeout <= 0:
        p.error("--timeout must be > 0 seconds")
    if not set(SYSTEMS) - set(x.strip() for x in a.skip.split(",") if x.strip()):
        p.error("--skip leaves no system to measure")
    a.skip = set(x.strip() for x in a.skip.split(",") if x.strip())
    bad = a.skip - set(SYSTEMS)
    if bad:
        p.error("--skip: unknown system(s) %s (choose from %s)" % (", ".join(sorted(bad)), ", ".join(SYSTEMS)))
    try:
        a.seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
    except ValueError:
        p.error("--seeds expects comma-separated integers, found '%s'" % a.seeds)
    if not a.seeds:
        p.error("--seeds is empty")
    return a


def main(argv):
    a = parse_args(argv)
    root = os.path.abspath(a.root)
    if not os.path.isdir(root):
        die("ROOT '%s' does not exist (make it with BUILD/debcm synth --scale tt150k --out ROOT)" % a.root)
    for sub in ("data_pgc", "data_matching"):
        if not os.path.isdir(os.path.join(root, sub)):
            die("ROOT '%s' has no %s/ (not a dataset in the published layout; make one with BUILD/debcm synth)"
                % (a.root, sub))
    build = os.path.abspath(a.build)
    debcm, bench = os.path.join(build, "debcm"), os.path.join(build, "bench_epoch")
    need_build = "debcm" not in a.skip
    if need_build:
        if not os.path.isdir(build):
            die("BUILD '%s' does not exist (configure and build debcm there, or pass --build DIR)" % a.build)
        for exe in (debcm, bench):
            if not os.access(exe, os.X_OK):
                die("BUILD '%s' has no executable %s (build it: cmake --build %s)" % (a.build, os.path.basename(exe),
                                                                                      a.build))
    if not ({"published", "fast"} <= a.skip) and not os.path.isfile(TRAIN_PY):
        die("%s is missing" % TRAIN_PY)
    if need_build:  # the whole dataset validated once (every file, row and value) before any child runs on it
        chk = subprocess.run([debcm, "inspect", root], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if chk.returncode != 0:
            die("ROOT '%s' fails validation: %s" % (a.root, (chk.stderr.strip().splitlines() or ["?"])[-1]))
    out = os.path.abspath(a.out or os.path.join("runs", "compare-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
    logdir = os.path.join(out, "logs")
    try:
        os.makedirs(logdir, exist_ok=True)
    except OSError as e:
        die("--out '%s': cannot create it: %s" % (out, e.strerror or e))
    if a.device == "cuda" and not ({"published", "fast"} <= a.skip):
        chk = subprocess.run([a.python, "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if chk.returncode != 0:
            die("--device cuda: %s has no CUDA-capable torch or no GPU is visible" % a.python)
    c = Child("dataset_sizes", [a.python, "-c", HELPER, HERE, "dataset_sizes", root], logdir)
    if not c.run(a.timeout):
        die("ROOT '%s': cannot read the dataset's sizes (%s; see %s)" % (a.root, (c.tail(1) or [c.error])[-1],
                                                                        c.err_path))
    sizes = json.loads(c.stdout().split("\n")[-2])
    children = [c]

    N, T, dev = a.epochs, a.threads, a.device
    thr = ["--threads", str(T)] if T > 0 else []
    result = dict(tool="bench/compare.py", argv=sys.argv, root=root, build=build, out=out, epochs=N,
                                threads=T, device=dev, seeds=a.seeds, skip=sorted(a.skip), dataset=sizes)
    mach = machine_info()
    started = datetime.datetime.now().isoformat(timespec="seconds")

    # ---- ceilings measured by this script
    ceil = {}
    c = Child("host_bandwidth", [a.python, "-c", HELPER, HERE, "host_bandwidth"], logdir)
    children.append(c)
    if c.run(a.timeout):
        try:
            ceil["host_bandwidth_bytes_s"] = float(c.stdout().split()[-1])
        except (ValueError, IndexError):
            c.fail("no bandwidth printed")
    if dev == "cuda":
        c = Child("device_bandwidth", [a.python, "-c", DEVICE_BW], logdir)
        children.append(c)
        if c.run(a.timeout):
            try:
                ceil["device_bandwidth_bytes_s"] = float(c.stdout().split()[-1])
            except (ValueError, IndexError):
                c.fail("no bandwidth printed")

    # ---- debcm
    be, reps, vtext = None, {}, ""
    if "debcm" not in a.skip:
        c = Child("debcm_version", [debcm, "version"], logdir)
        children.append(c)
        if c.run(a.timeout):
            vtext = c.stdout()
        be_json = os.path.join(out, "bench_epoch.json")
        be_n = min(N, MAX_BENCH_EPOCHS)
        cmd = [bench, root, "--epochs", be_n] + thr + (["--device", "cuda"] if dev == "cuda" else []) + ["--json",
                                                                                                         be_json]
        c = Child("bench_epoch", cmd, logdir)
        children.append(c)
        c.run(a.timeout)
        be = load_json(c, be_json)
        be_child = c
        for s in a.seeds:
            rd = os.path.join(out, "debcm_run_s%d" % s)
            cmd = [debcm, "run", root, "--teacher-epochs", N, "--student-epochs", N, "--seed", s] + thr + \
                  (["--device", "cuda"] if dev == "cuda" else []) + ["--out", rd]
            c = Child("debcm_run_s%d" % s, cmd, logdir)
            children.append(c)
            c.run(a.timeout)
            rep = load_json(c, os.path.join(rd, "report.json"))
            if rep is not None:
                reps[s] = (rep, c)

    # ---- torch
    tjs = {"published": {}, "fast": {}}
    for form in ("published", "fast"):
        if form in a.skip:
            continue
        for s in a.seeds:
            jp = os.path.join(out, "torch_%s_s%d.json" % (form, s))
            cmd = [a.python, TRAIN_PY, root, "--form", form, "--teacher-epochs", N, "--student-epochs", N,
                   "--seed", s, "--threads", T, "--device", dev, "--json", jp]
            c = Child("torch_%s_s%d" % (form, s), cmd, logdir)
            children.append(c)
            c.run(a.timeout)
            js = load_json(c, jp)
            if js is not None:
                tjs[form][s] = (js, c)

    # ---- ceilings: SGEMM from bench_epoch, else numpy's (a fallback, labelled so)
    if be is not None:
        ceil["sgemm_gflops"] = be["gemm_mix_gflops"]
        ceil["sgemm_source"] = "bench_epoch gemm_mix_gflops (%s SGEMM at the student step's shapes)" % (
            "cuBLAS" if dev == "cuda" else "OpenBLAS")
    elif dev == "cpu":
        c = Child("numpy_sgemm", [a.python, "-c", NUMPY_SGEMM], logdir)
        children.append(c)
        if c.run(a.timeout):
            try:
                ceil["sgemm_gflops"] = float(c.stdout().split()[-1])
                ceil["sgemm_source"] = "numpy float32 matmul 1024x2048x128, best of 7 (fallback: no bench_epoch)"
            except (ValueError, IndexError):
                c.fail("no rate printed")
    bw = ceil.get("device_bandwidth_bytes_s" if dev == "cuda" else "host_bandwidth_bytes_s")
    ceil["bandwidth_used_bytes_s"] = bw
    result["ceilings"] = ceil

    # ---- floors per phase (and per system where the work differs: the published form has no teacher cache)
    S = sizes
    floors = {
        "teacher": train_floor(S["pgc_train"], S["D_v"], S["D_m"], LATENT, None, False, True),
        "student (teacher cache)": train_floor(S["ugc_train"], S["D_v_ugc"], S["D_m_ugc"], LATENT, S["G"], True, True),
        "student (no cache)": train_floor(S["ugc_train"], S["D_v_ugc"], S["D_m_ugc"], LATENT, S["G"], True, False),
        "teacher validation": eval_floor(S, False),
        "student validation": eval_floor(S, True),
    }
    for f in floors.values():
        f["flop_floor_ms"] = 1e3 * f["flops"] / (ceil["sgemm_gflops"] * 1e9) if ceil.get("sgemm_gflops") else None
        f["byte_floor_ms"] = 1e3 * f["bytes"] / bw if bw else None
        parts = [x for x in (f["flop_floor_ms"], f["byte_floor_ms"]) if x is not None]
        f["floor_ms"] = max(parts) if parts else None
        f["bound"] = None if not parts else ("FLOPs" if f["floor_ms"] == f["flop_floor_ms"] else "bytes")
    result["floors"] = floors
    if be is not None:  # cross-check the FLOP count with bench_epoch's own (gflops x ms = the epoch's GFLOP)
        for ph, key in (("teacher", "teacher"), ("student", "student (teacher cache)")):
            bp = be["phases"].get(ph)
            if bp:
                theirs = bp["gflops"] * bp["ms_per_epoch"] / 1e3 * 1e9
                mine = floors[key]["flops"]
                floors[key]["bench_epoch_flops"] = theirs
                floors[key]["bench_epoch_floor_ms"] = bp["floor_ms"]
                if abs(theirs - mine) > 1e-3 * mine:
                    print("compare.py: warning: %s FLOPs per epoch: ours %.4g, bench_epoch's %.4g" % (ph, mine, theirs))

    # ---- the phase table
    first = a.seeds[0]
    rows = []  # (phase, system, samples/s, ms, floor key, extra)

    def add(phase, system, sps, ms, fkey, note=""):
        rows.append(dict(phase=phase, system=system, samples_per_s=sps, ms=ms, floor_key=fkey, note=note))

    if be is not None:
        for ph, fk in (("teacher", "teacher"), ("student", "student (teacher cache)")):
            bp = be["phases"].get(ph)
            if bp:
                add("%s epoch" % ph, "debcm", bp["samples_per_s"], bp["ms_per_epoch"], fk,
                    "bench_epoch, median of %d after a warm-up" % min(N, MAX_BENCH_EPOCHS))
    for form in ("published", "fast"):
        if first in tjs[form]:
            js = tjs[form][first][0]
            for ph in ("teacher", "student"):
                tp = torch_phase(js, ph)
                if tp:
                    fk = "teacher" if ph == "teacher" else (
                        "student (no cache)" if form == "published" else "student (teacher cache)")
                    add("%s epoch" % ph, form, tp["samples_per_s"], tp["ms"], fk,
                        "first epoch (includes warm-up)" if tp["includes_first_epoch"]
                        else "median of %d after the first" % tp["epochs_timed"])
    for ph, vk, nrows in (("teacher", "teacher validation", S["pgc_val"]), ("student", "student validation",
                                                                             S["ugc_val"])):
        if be is not None:
            ms = be["validation_ms"][ph]
            add(vk, "debcm", nrows / (ms / 1e3) if ms > 0 else None, ms, vk, "bench_epoch, median of 3 after a warm-up")
        for form in ("published", "fast"):
            if first in tjs[form]:
                tp = torch_phase(tjs[form][first][0], ph)
                if tp:
                    add(vk, form, nrows / (tp["val_ms"] / 1e3) if tp["val_ms"] > 0 else None, tp["val_ms"], vk,
                        "median over the %d epochs' validations" % N)
    # the whole job, wall clock of the process (load, N + N epochs with validation, test)
    if first in reps:
        c = reps[first][1]
        add("whole job (wall)", "debcm", None, 1e3 * c.wall_s, None, "debcm run, process wall time")
    for form in ("published", "fast"):
        if first in tjs[form]:
            c = tjs[form][first][1]
            add("whole job (wall)", form, None, 1e3 * c.wall_s, None, "train.py, process wall time")
    base = {(r["phase"]): r["ms"] for r in rows if r["system"] == "debcm"}
    for r in rows:
        r["x_debcm"] = r["ms"] / base[r["phase"]] if r["phase"] in base and base[r["phase"]] else None
        fl = floors.get(r["floor_key"]) if r["floor_key"] else None
        r["floor_ms"] = fl["floor_ms"] if fl else None
        r["x_floor"] = r["ms"] / r["floor_ms"] if r["floor_ms"] else None
    result["phases"] = rows

    # ---- memory per process
    mem = []
    if be is not None:
        mem.append(dict(system="debcm", process="bench_epoch", host_bytes=be_child.maxrss_bytes,
                        host_self_reported_bytes=be.get("peak_rss_bytes"),
                        device_bytes=be.get("device_memory_bytes") or None))
    if first in reps:
        mem.append(dict(system="debcm", process="debcm run", host_bytes=reps[first][1].maxrss_bytes,
                        device_bytes=None))
    for form in ("published", "fast"):
        if first in tjs[form]:
            js, c = tjs[form][first]
            mem.append(dict(system=form, process="train.py --form %s" % form, host_bytes=c.maxrss_bytes,
                            device_bytes=js.get("peak_device_memory_bytes")))  # train.py does not report it yet
    result["memory"] = mem

    # ---- metrics after N epochs
    metrics = {}
    if reps:
        metrics["debcm"] = [debcm_metrics(reps[s][0]) for s in a.seeds if s in reps]
    for form in ("published", "fast"):
        if tjs[form]:
            metrics[form] = [torch_metrics(tjs[form][s][0]) for s in a.seeds if s in tjs[form]]
    result["metrics"] = {k: {str(s): m for s, m in zip([s for s in a.seeds if s in (reps if k == "debcm" else
                                                                                    tjs[k])], v)}
                         for k, v in metrics.items()}
    agreement = judge(metrics, N)
    result["agreement"] = agreement
    result["teacher_cache_ms"] = {
        "debcm": be["phases"]["student"]["cache_ms"] if be and "student" in be["phases"] else None,
        "fast": 1e3 * tjs["fast"][first][0]["student"]["teacher_cache_s"] if first in tjs["fast"] else None}

    # ---- children
    result["children"] = [c.record() for c in children]
    failed = [c for c in children if not c.ok]
    mach["loadavg_end"] = os.getloadavg()[0]
    torch_version = next((tjs[f][s][0].get("torch") for f in ("published", "fast") for s in tjs[f]), None)
    mach.update(torch=torch_version, openblas=openblas_config(vtext), debcm_version=vtext.strip() or None,
                started=started)
    result["machine"] = mach

    # ---- Markdown
    md = []
    md.append("# debcm vs PyTorch: %s, %d epoch%s per phase, %s, %s thread%s" % (
        os.path.basename(root.rstrip("/")), N, "" if N == 1 else "s", dev, T if T else "default",
        "" if T == 1 else "s"))
    md.append("")
    md.append("Machine: %s; %s logical CPUs (%s physical cores, %s usable); %s GB RAM; load average %.2f at the "
              "start, %.2f at the end. torch %s, Python %s. debcm BLAS: %s." % (
                  mach["cpu"], mach["logical_cpus"], mach["physical_cores"] or "?", mach["affinity_cpus"] or "?",
                  f_num(mach["mem_bytes"] and mach["mem_bytes"] / 1e9, "%.0f"), mach["loadavg_start"],
                  mach["loadavg_end"], torch_version or "?", mach["python"], mach["openblas"] or "?"))
    md.append("")
    md.append("Dataset %s: teacher %d pairs (val %d) over %d musics, student %d rows (val %d × %d negatives) over "
              "%d musics; D_v %d, D_m %d, G %d; batch %d, L %d. Ceilings: SGEMM %s GFLOP/s (%s); memory bandwidth "
              "%s GB/s (%s)." % (
                  root, S["pgc_train"], S["pgc_val"], S["pgc_musics"], S["ugc_train"], S["ugc_val"],
                  S["ugc_val_negatives"], S["ugc_musics"], S["D_v"], S["D_m"], S["G"], BATCH, LATENT,
                  f_num(ceil.get("sgemm_gflops"), "%.1f"), ceil.get("sgemm_source", "not measured"),
                  f_num(bw and bw / 1e9, "%.1f"),
                  "torch copy of 256 MB on the device, read + write, best of 3" if dev == "cuda"
                  else "numpy copy of 256 MB, read + write, best of 3"))
    md.append("")
    md.append("## Speed (× debcm: time ÷ debcm's time; × floor: time ÷ max(FLOP floor, byte floor))")
    md.append("")
    md.append(md_table(["phase", "system", "samples/s", "ms", "× debcm", "floor ms", "× floor", "timed"],
                       [[r["phase"], LABEL[r["system"]], f_num(r["samples_per_s"]), f_ms(r["ms"]),
                         f_ratio(r["x_debcm"]), f_ms(r["floor_ms"]), f_ratio(r["x_floor"]), r["note"]]
                        for r in rows]))
    md.append("")
    md.append("## Floors per epoch / per validation")
    md.append("")
    md.append(md_table(["phase", "GFLOP", "MB moved", "FLOP floor ms", "byte floor ms", "floor ms", "bound by"],
                       [[k, f_num(f["flops"] / 1e9, "%.2f"), f_num(f["bytes"] / 1e6, "%.1f"),
                         f_ms(f["flop_floor_ms"]), f_ms(f["byte_floor_ms"]),
                         f_ms(f["floor_ms"]), f["bound"] or "—"] for k, f in floors.items()]))
    md.append("")
    md.append("FLOPs: bench_epoch.c's step_gemms count (teacher step 18·B·L·(D_m+D_v) + 6·B²·L; student + 6·B·L², "
              "+ 4·B·L·(D_m+D_v) without the teacher cache, i.e. the published form), summed over the epoch's "
              "batches. Bytes: the features of the epoch's rows read once, (D_v+D_m)·4 per row, plus parameters, "
              "gradients and Adam m, v (4 × n_params × 4 bytes) once per step; n_params %d (teacher), %d (student). "
              "Validation: the mu encoders of the musics and the distinct val videos plus the scores." % (
                  floors["teacher"]["n_params"], floors["student (teacher cache)"]["n_params"]))
    tc = result["teacher_cache_ms"]
    if tc["debcm"] is not None or tc["fast"] is not None:
        md.append("The frozen teacher's posteriors, once per run (not in the student epochs): debcm %s ms, torch "
                  "fast %s ms." % (f_num(tc["debcm"]), f_num(tc["fast"])))
    md.append("")
    md.append("## Peak memory per process")
    md.append("")
    inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["memory_inherited_bytes"] = inherited
    md.append(md_table(["system", "process", "host MB (ru_maxrss)", "device MB"],
                       [[LABEL[m["system"]], m["process"], f_num(m["host_bytes"] and m["host_bytes"] / 1e6),
                         f_num(m["device_bytes"] and m["device_bytes"] / 1e6,
                               none="—" if dev == "cpu" else "not reported")] for m in mem]))
    md.append("")
    md.append("Host: each process's own ru_maxrss (os.wait4), which on Linux starts from compare.py's %.0f MB "
              "(vfork + exec keep the parent's high-water mark); bench_epoch's self-reported peak (%s MB) includes "
              "it too. Device: bench_epoch's memory in use after the runs; train.py does not report torch's."
              % (inherited / 1e6, f_num(be and be.get("peak_rss_bytes") and be["peak_rss_bytes"] / 1e6)))
    md.append("")
    md.append("## Metrics after %d epoch%s per phase (best epoch; seed%s %s)" % (
        N, "" if N == 1 else "s", "" if len(a.seeds) == 1 else "s", ",".join(map(str, a.seeds))))
    md.append("")
    systems = [k for k in SYSTEMS if k in metrics]
    head = ["metric"] + [LABEL[k] for k in systems] + ["seed sd (pooled)"] + \
        ["%s − debcm" % LABEL[k] for k in systems if k != "debcm" and "debcm" in metrics] + ["agreement"]
    mrows = []
    for m in METRICS:
        ag = agreement[m]
        cells = [m]
        for k in systems:
            v = ag["values"].get(k, [])
            cells.append("—" if not v else "%.4f" % v[0] if len(v) == 1 else "%.4f (%s)" % (
                ag["mean"][k], ", ".join("%.4f" % x for x in v)))
        cells.append(f_num(ag["pooled_seed_sd"], "%.4f", "—"))
        for k in systems:
            if k != "debcm" and "debcm" in metrics:
                cells.append(f_num(ag["diff_vs_debcm"].get(k), "%+.4f"))
        verdicts = set(ag["verdict"].values())
        cells.append(verdicts.pop() if len(verdicts) == 1 else
                     "; ".join("%s: %s" % (LABEL[k], v) for k, v in ag["verdict"].items()) or "—")
        mrows.append(cells)
    md.append(md_table(head, mrows))
    md.append("")
    if len(a.seeds) < 2:
        md.append("Agreement is not judged: one seed gives no between-seed spread (pass --seeds 1,2).")
    if N < FEW_EPOCHS:
        md.append("With %d epoch%s per phase the models are early in training; the metrics mostly show the seed and "
                  "each system's own random streams, so agreement is not judged (it needs >= %d epochs and >= 2 "
                  "seeds; the published setting is 50)." % (N, "" if N == 1 else "s", FEW_EPOCHS))
    md.append("Rule: per metric, σ = the pooled between-seed standard deviation over the systems; a system agrees "
              "with debcm when its seed mean differs by at most 3·σ·√(1/n_a + 1/n_b).")
    md.append("")
    if failed:
        md.append("## Failed children")
        md.append("")
        for c in failed:
            md.append("- %s: %s (rc %s); last stderr lines: %s" % (
                c.name, c.error, c.rc, " / ".join(c.tail(4)) or "(empty)"))
        md.append("")
    md.append("Logs and JSON: %s" % out)
    text = "\n".join(md) + "\n"
    result["markdown"] = text
    write_atomic(os.path.join(out, "compare.json"), json.dumps(result, indent=1, default=str) + "\n")
    write_atomic(os.path.join(out, "compare.md"), text)

    if failed:
        print("\ncompare.py: %d child%s failed:" % (len(failed), "" if len(failed) == 1 else "ren"))
        for c in failed:
            print("  %s: %s (rc %s): %s" % (c.name, c.error, c.rc, " ".join(shlex.quote(x) for x in c.cmd)))
            for line in c.tail(8):
                print("    | " + line)
    print("\ncompare.py: wrote %s and %s\n" % (os.path.join(out, "compare.json"), os.path.join(out, "compare.md")))
    print(text, end="")
    return 1 if failed else 0


def interrupted():
    """Ctrl-C or SIGTERM: stop the running child, wait for it, one line, exit 130."""
    p = Child.running
    if p is not None and p.returncode is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
            os.waitpid(p.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    print("\ncompare.py: interrupted; the running child was stopped (partial logs are in the output folder)",
          file=sys.stderr)
    return 130


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(interrupted())
