"""The FREEZE study: frozen decoder-LM features for semantic textual similarity (STS-B).

Seed paper: "FREEZE! Pretrained Language Models as Frozen Feature Extractors". The
features are the per-layer activation shards of :mod:`repgeom.activations` (the
residual stream after every block, at the last token or averaged over tokens); the LM
itself never runs here. Every probe is trained on the STS-B train split, its epoch (and,
for the single-layer baseline, its layer) chosen on dev, and scored once on test; scores
are normalised to [0, 1] (``score / 5``).

The progression (each a *variant* in the config, ``sts.variants``):

``best_layer``   cosine of the two sentences' latents at one layer vs the score (the paper's
                 Figure 1 is the curve over layers); the layer with the best dev Pearson is
                 the baseline. No training, so no seed spread.
``mlp``          a one-hidden-layer MLP over the n_layers cosines, sigmoid output.

Both take ``standardize: true`` (an extension, not in the paper): the cosine of latents standardised
per layer and dimension with train-split statistics, which removes the residual stream's few huge
outlier dimensions that push every raw cosine towards 1.

``siamese``      one network per layer (``Linear(d, width)`` + activation, the same net for
                 both sentences), per-layer cosines of their outputs, then the MLP; trained end
                 to end.
``autoencoder``  as ``siamese``, with each layer's network initialised from the encoder of an
                 autoencoder pretrained to reconstruct that layer's latent on GenericsKB
                 sentences (``width`` = ``bottleneck``, ``bottleneck_late`` for the later half of
                 the layers); ``ae_loss`` is ``mse`` or ``logvar`` (log Var(prediction − target)).
``snli``         (optional) as ``siamese``, the networks first trained on SNLI pairs
                 (entailment 1, neutral 0.5, contradiction 0).

The training ``loss`` of any trained variant is ``mse`` or ``logvar``. Inputs are standardised
per layer and dimension with the statistics of the data the networks were (pre)trained on (the
residual stream has a few huge outlier dimensions). Training is deterministic on CPU for a seed
and uses the GPU when there is one.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .artifacts import ArtifactError, atomic_path, now_iso, read_json, texts_sha256, write_text
from .corpora import corpus_sentences, load_corpus, sentence_id, snli_pairs, stsb_pairs
from .metrics import best_result, correlations

log = logging.getLogger(__name__)

HEADS = ("best_layer", "mlp", "siamese")
PRETRAIN = ("none", "autoencoder", "snli")
LOSSES = ("mse", "logvar")

#: the paper's gpt2-medium results on the STS-B test split (Pearson, Spearman, ×100), by the variant
#: names of the default config
PAPER_GPT2_MEDIUM = {
    "mlp": (39.2, 42.06),
    "siamese": (71.63, 69.72),
    "ae_mse": (75.36, 73.21),
    "ae_logvar": (76.86, 75.03),
}


class STSError(ValueError):
    """The STS inputs do not fit together (missing sentences, mismatched shards)."""


# ------------------------------------------------------------------ data
def load_latents(shard_dir, position: str = "last", layers: Iterable[int] | None = None,
                 expect: Mapping[str, Any] | None = None) -> tuple[list[int], dict[str, int], np.ndarray]:
    """``(layers, row_of_id, X (n_layers, N, d) float32)`` from one extraction's shards (checksums verified)."""
    from .activations import iter_layers, list_layers

    todo = list(layers) if layers else [L for L in list_layers(shard_dir, position) if L > 0]
    X, ids0, got = None, None, []
    for i, (L, x, ids, attrs) in enumerate(iter_layers(shard_dir, todo, expect=expect, position=position)):
        if X is None:
            X = np.empty((len(todo), *x.shape), dtype=np.float32)
            ids0 = ids
        X[i] = x
        got.append(L)
    row = {str(s): i for i, s in enumerate(ids0)}
    return got, row, X


def standardised(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X`` standardised per layer and dimension with the mean and std of ``X[:, rows]``."""
    sub = X[:, np.unique(rows)]
    mean, std = sub.mean(axis=1, keepdims=True), sub.std(axis=1, keepdims=True)
    return ((X - mean) / np.where(std > 1e-12, std, 1.0)).astype(np.float32)


def rows_for(row_of_id: Mapping[str, int], ids: Sequence[str], what: str) -> np.ndarray:
    missing = [i for i in ids if i not in row_of_id]
    if missing:
        raise STSError(f"{len(missing)} {what} sentences have no activations (first id {missing[0]}); the shards "
                       "were made from other texts: rerun the activations stage")
    return np.fromiter((row_of_id[i] for i in ids), dtype=np.int64, count=len(ids))


# ------------------------------------------------------------------ scoring
def pair_cosines(X: np.ndarray, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Cosine of each pair at each layer: ``(n_pairs, n_layers)``. ``X`` is (n_layers, N, d)."""
    a, b = X[:, r1], X[:, r2]
    num = np.einsum("lnd,lnd->ln", a, b)
    den = np.linalg.norm(a, axis=2) * np.linalg.norm(b, axis=2)
    return (num / np.maximum(den, 1e-12)).T.astype(np.float32)


def layer_curve(X: np.ndarray, layers: Sequence[int], pairs: Mapping[str, dict],
                rows: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Pearson/Spearman of the raw cosine at every layer, per split (the paper's Figure 1)."""
    out = [{"layer": int(L)} for L in layers]
    for split, (r1, r2) in rows.items():
        cos = pair_cosines(X, r1, r2)
        for j in range(len(layers)):
            p, s = correlations(cos[:, j], pairs[split]["y"])
            out[j][f"{split}_pearson"], out[j][f"{split}_spearman"] = p, s
    return out


# ------------------------------------------------------------------ networks
def _torch():
    import torch

    return torch


def _device(device: str):
    torch = _torch()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def layer_widths(n_layers: int, bottleneck: int, bottleneck_late: int | None) -> list[int]:
    """The paper's widths: ``bottleneck`` for the first half of the layers, ``bottleneck_late`` after."""
    late = bottleneck_late or bottleneck
    return [bottleneck if j < n_layers / 2 else late for j in range(n_layers)]


def _activation(name: str):
    nn = _torch().nn
    return {"tanh": nn.Tanh, "gelu": nn.GELU, "relu": nn.ReLU, "none": nn.Identity}[name]()


def build_modules(d: int, widths: Sequence[int], activation: str, head_hidden: int | None,
                  with_decoders: bool = False):
    """The per-layer encoders (and decoders), and the MLP head over the per-layer cosines (none when
    ``head_hidden`` is None: the autoencoders)."""
    nn = _torch().nn

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoders = nn.ModuleList(nn.Sequential(nn.Linear(d, w), _activation(activation)) for w in widths)
            if with_decoders:
                self.decoders = nn.ModuleList(nn.Linear(w, d) for w in widths)
            if head_hidden is not None:
                self.head = nn.Sequential(nn.Linear(len(widths), head_hidden), nn.ReLU(),
                                          nn.Linear(head_hidden, 1))
            self.register_buffer("mean", _torch().zeros(len(widths), d))
            self.register_buffer("std", _torch().ones(len(widths), d))

        def encode(self, x):  # x: (L, B, d) raw latents
            x = (x - self.mean[:, None]) / self.std[:, None]
            return [enc(x[j]) for j, enc in enumerate(self.encoders)]

        def cosines(self, xa, xb):
            torch = _torch()
            za, zb = self.encode(xa), self.encode(xb)
            return torch.stack([nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-8) for a, b in zip(za, zb)],
                               dim=1)

        def forward(self, xa, xb):
            return _torch().sigmoid(self.head(self.cosines(xa, xb))).squeeze(-1)

        def reconstruct(self, x):
            xs = (x - self.mean[:, None]) / self.std[:, None]
            return xs, [dec(z) for dec, z in zip(self.decoders, self.encode(x))]

    return Probe()


def loss_fn(name: str):
    torch = _torch()
    if name == "mse":
        return lambda pred, y: torch.mean((pred - y) ** 2)
    if name == "logvar":
        return lambda pred, y: torch.log(torch.var(pred - y) + 1e-12)
    raise ValueError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})")


def _standardise(net, X: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Set the network's per-layer mean/std from ``X[:, rows]`` (the data it is trained on)."""
    torch = _torch()
    sub = X if rows is None else X[:, np.unique(rows)]
    mean = sub.mean(axis=1)
    std = sub.std(axis=1)
    std = np.where(std > 1e-6 * max(1.0, float(std.max())), std, 1.0)
    net.mean.copy_(torch.from_numpy(mean))
    net.std.copy_(torch.from_numpy(std.astype(np.float32)))


@contextlib.contextmanager
def _deterministic(seed: int):
    torch = _torch()
    torch.manual_seed(seed)
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old)


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, file=sys.stderr, mininterval=2)


def pretrain_autoencoders(X: np.ndarray, *, widths: Sequence[int], activation: str, loss: str, epochs: int,
                          lr: float, batch_size: int, seed: int, holdout: float = 0.05, device: str = "auto",
                          progress: bool = True) -> tuple[dict, dict]:
    """Train one autoencoder per layer on ``X`` (n_layers, N, d), all layers at once.

    Returns ``(state_dict, curves)``: the encoders' and decoders' weights with the standardisation, and
    per layer and epoch the held-out reconstruction MSE (in standardised units) and the training loss.
    """
    torch = _torch()
    dev = _device(device)
    L, N, d = X.shape
    rng = np.random.default_rng(seed)
    perm = rng.permutation(N)
    n_hold = max(1, int(round(N * holdout)))
    hold, train = np.sort(perm[:n_hold]), perm[n_hold:]
    with _deterministic(seed):
        net = build_modules(d, widths, activation, None, with_decoders=True)
        _standardise(net, X, train)
        net.to(dev)
        params = list(net.encoders.parameters()) + list(net.decoders.parameters())
        opt = torch.optim.Adam(params, lr=lr)
        lf = loss_fn(loss)
        Xt = torch.from_numpy(X)
        curves = {"heldout_mse": [], "train_loss": []}
        gen = torch.Generator().manual_seed(seed)
        bar = _bar(epochs, f"autoencoders ({loss}, seed {seed})", progress)
        for _ in range(epochs):
            net.train()
            order = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
            tot, nb = np.zeros(L), 0
            for s in range(0, len(order), batch_size):
                xb = Xt[:, order[s: s + batch_size]].to(dev)
                target, recon = net.reconstruct(xb)
                per_layer = torch.stack([lf(r, target[j]) for j, r in enumerate(recon)])
                opt.zero_grad()
                per_layer.sum().backward()
                opt.step()
                tot += per_layer.detach().cpu().numpy()
                nb += 1
            curves["train_loss"].append((tot / max(nb, 1)).tolist())
            curves["heldout_mse"].append(_heldout_mse(net, Xt, hold, dev).tolist())
            bar.set_postfix(heldout_mse=f"{np.mean(curves['heldout_mse'][-1]):.3f}")
            bar.update()
        bar.close()
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return state, curves


def _heldout_mse(net, Xt, rows, dev, chunk: int = 2048) -> np.ndarray:
    torch = _torch()
    net.eval()
    tot = None
    with torch.no_grad():
        for s in range(0, len(rows), chunk):
            target, recon = net.reconstruct(Xt[:, rows[s: s + chunk]].to(dev))
            e = torch.stack([((r - target[j]) ** 2).sum(dim=0).mean() for j, r in enumerate(recon)]).cpu().numpy()
            tot = e if tot is None else tot + e
    return tot / len(rows)


def _predict(net, Xt, r1, r2, dev, chunk: int = 1024) -> np.ndarray:
    torch = _torch()
    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(r1), chunk):
            out.append(net(Xt[:, r1[s: s + chunk]].to(dev), Xt[:, r2[s: s + chunk]].to(dev)).cpu().numpy())
    return np.concatenate(out)


def train_pairs(net, Xt, r1, r2, y, *, params, loss: str, epochs: int, lr: float, weight_decay: float,
                batch_size: int, seed: int, dev, evaluate=None, patience: int | None = None, progress: bool = True,
                desc: str = "train") -> dict:
    """Train ``net`` on pairs (rows ``r1``, ``r2`` of ``Xt``; targets ``y``), keeping the state with the best
    ``evaluate()`` (dev Pearson) when given. Returns the history."""
    torch = _torch()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    lf = loss_fn(loss)
    gen = torch.Generator().manual_seed(seed)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
    r1t, r2t = torch.from_numpy(r1), torch.from_numpy(r2)
    hist = {"train_loss": [], "dev_pearson": []}
    best, best_state, best_epoch, since = -math.inf, None, 0, 0
    bar = _bar(epochs, desc, progress)
    for ep in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(y), generator=gen)
        tot, nb = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            if len(idx) < 2:
                continue
            pred = net(Xt[:, r1t[idx]].to(dev), Xt[:, r2t[idx]].to(dev))
            loss_v = lf(pred, yt[idx].to(dev))
            opt.zero_grad()
            loss_v.backward()
            opt.step()
            tot += loss_v.item()
            nb += 1
        hist["train_loss"].append(tot / max(nb, 1))
        if evaluate is not None:
            score = evaluate()
            hist["dev_pearson"].append(score)
            if score > best:
                best, best_epoch, since = score, ep, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                since += 1
            bar.set_postfix(dev_pearson=f"{score:.2f}", best=f"{best:.2f}@{best_epoch}")
        bar.update()
        if patience and since >= patience:
            break
    bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    hist["best_epoch"] = best_epoch
    hist["epochs_run"] = len(hist["train_loss"])
    return hist


# ------------------------------------------------------------------ the probe stage
def _check_variant(name: str, v: Mapping[str, Any]) -> None:
    if v["head"] not in HEADS:
        raise ValueError(f"sts.variants.{name}.head = {v['head']!r}: one of {', '.join(HEADS)}")
    if v.get("pretrain", "none") not in PRETRAIN:
        raise ValueError(f"sts.variants.{name}.pretrain = {v.get('pretrain')!r}: one of {', '.join(PRETRAIN)}")


def run_variant(name: str, variant: Mapping[str, Any], *, shard_dir, corpus_path, position: str, seeds: Sequence[int],
                train: Mapping[str, Any], autoencoder: str | os.PathLike | None = None, snli_shards=None,
                snli_corpus=None, device: str = "auto", progress: bool = True, model: str = "") -> dict:
    """Run one variant of the progression for one model and pooling position, over ``seeds``.

    ``train`` holds the shared hyper-parameters (``epochs``, ``lr``, ``weight_decay``, ``batch_size``,
    ``patience``, ``head_hidden``, ``bottleneck``, ``bottleneck_late``, ``activation``); the variant's own keys
    override them. Returns a JSON-able result: per seed the dev and test scores, the chosen epoch or layer, the
    test predictions; the mean ± std over seeds; for ``best_layer`` the whole layer curve.
    """
    torch = _torch()
    _check_variant(name, variant)
    hp = {**train, **{k: v for k, v in variant.items()
                      if k not in ("head", "pretrain", "ae_loss", "description", "standardize")}}
    t0 = time.time()
    pairs = stsb_pairs(corpus_path)
    _, texts = corpus_sentences(corpus_path)
    # the shards must be made from exactly this corpus's sentences (not an older or differently limited copy)
    layers, row_of_id, X = load_latents(shard_dir, position, hp.get("layers") or None,
                                        expect={"texts_sha256": texts_sha256(texts)})
    rows = {s: (rows_for(row_of_id, p["id1"], s), rows_for(row_of_id, p["id2"], s)) for s, p in pairs.items()}
    L, N, d = X.shape
    log.info("%s/%s %s: %d layers × %d sentences × %d dims; pairs %s", model, position, name, L, N, d,
             {s: len(p["y"]) for s, p in pairs.items()})
    result: dict[str, Any] = {"kind": "sts_variant", "model": model, "position": position, "variant": name,
                              "spec": dict(variant), "hyper": hp, "layers": layers, "n_pairs":
                              {s: len(p["y"]) for s, p in pairs.items()}, "test_ids": pairs["test"]["id"],
                              "test_gold": pairs["test"]["y"].tolist(), "runs": []}
    if variant.get("standardize") and variant["head"] in ("best_layer", "mlp"):
        # cosine of standardised latents (per layer and dimension, train-split statistics): removes the few
        # huge outlier dimensions of the residual stream that make raw cosines all close to 1
        X = standardised(X, np.concatenate(rows["train"]))
    if variant["head"] == "best_layer":
        curve = layer_curve(X, layers, pairs, rows)
        j = int(np.nanargmax([c["dev_pearson"] for c in curve]))
        cos = pair_cosines(X[j: j + 1], *rows["test"])[:, 0]
        result["curve"] = curve
        result["runs"].append({"seed": None, "layer": layers[j], "dev_pearson": curve[j]["dev_pearson"],
                               "dev_spearman": curve[j]["dev_spearman"], "test_pearson": curve[j]["test_pearson"],
                               "test_spearman": curve[j]["test_spearman"],
                               # cosines are in [-1, 1]; mapped to [0, 1] so they sit beside the scores
                               "test_pred": ((cos + 1) / 2).tolist()})
    else:
        dev = _device(device)
        Xt = torch.from_numpy(X)
        if variant["head"] == "mlp":
            cos = {s: torch.from_numpy(pair_cosines(X, *r)) for s, r in rows.items()}
        for seed in seeds:
            ts = time.time()
            with _deterministic(int(seed)):
                extra: dict[str, Any] = {}
                if variant["head"] == "mlp":
                    run = _train_mlp(cos, pairs, hp, int(seed), dev, progress, f"{model}/{position} {name} seed {seed}")
                else:
                    widths = layer_widths(L, hp["bottleneck"], hp.get("bottleneck_late"))
                    net = build_modules(d, widths, hp["activation"], hp["head_hidden"])
                    _standardise(net, X, np.concatenate(rows["train"]))
                    pre = variant.get("pretrain", "none")
                    if pre == "autoencoder":
                        extra["autoencoder"] = _load_autoencoder(net, autoencoder, int(seed), layers)
                    elif pre == "snli":
                        extra["snli"] = _pretrain_snli(net, snli_shards, snli_corpus, position, layers, hp,
                                                       int(seed), dev, progress)
                    net.to(dev)

                    def evaluate():
                        return correlations(_predict(net, Xt, *rows["dev"], dev), pairs["dev"]["y"])[0]

                    hist = train_pairs(net, Xt, *rows["train"], pairs["train"]["y"], params=net.parameters(),
                                       loss=hp["loss"], epochs=hp["epochs"], lr=hp["lr"],
                                       weight_decay=hp["weight_decay"], batch_size=hp["batch_size"], seed=int(seed),
                                       dev=dev, evaluate=evaluate, patience=hp.get("patience"), progress=progress,
                                       desc=f"{model}/{position} {name} seed {seed}")
                    preds = {s: _predict(net, Xt, *rows[s], dev) for s in ("train", "dev", "test")}
                    run = {"history": hist, "best_epoch": hist["best_epoch"], "preds": preds}
                if hp["loss"] == "logvar":
                    extra["calibration"] = _calibrate(run["preds"], pairs["train"]["y"])
            dp, ds_ = correlations(run["preds"]["dev"], pairs["dev"]["y"])
            tp, ts_ = correlations(run["preds"]["test"], pairs["test"]["y"])
            result["runs"].append({"seed": int(seed), "best_epoch": run["best_epoch"], "dev_pearson": dp,
                                   "dev_spearman": ds_, "test_pearson": tp, "test_spearman": ts_,
                                   "history": run.get("history"), "seconds": round(time.time() - ts, 2),
                                   "test_pred": run["preds"]["test"].tolist(), **extra})
            log.info("%s/%s %s seed %s: dev %.2f / test Pearson %.2f Spearman %.2f (epoch %s, %.1f s)", model,
                     position, name, seed, dp, tp, ts_, run["best_epoch"], time.time() - ts)
    result["summary"] = summarise_runs(result["runs"])
    result["seconds"] = round(time.time() - t0, 2)
    result["created"] = now_iso()
    return result


def summarise_runs(runs: Sequence[Mapping[str, Any]]) -> dict:
    out = {"n_seeds": len(runs)}
    for k in ("dev_pearson", "dev_spearman", "test_pearson", "test_spearman"):
        v = np.array([r[k] for r in runs], dtype=float)
        out[k] = float(np.mean(v))
        out[k + "_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return out


def _cosine_head(n_layers: int, hidden: int):
    """Variant ``mlp``: the MLP head alone over the fixed per-layer cosines, in :func:`train_pairs`' calling
    convention (a "latent" tensor of shape (1, n_pairs, n_layers) indexed by pair rows)."""
    nn = _torch().nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Sequential(nn.Linear(n_layers, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, xa, _xb):
            return _torch().sigmoid(self.head(xa[0])).squeeze(-1)

    return Head()


def _train_mlp(cos, pairs, hp, seed, dev, progress, desc) -> dict:
    n_layers = next(iter(cos.values())).shape[1]
    net = _cosine_head(n_layers, hp["head_hidden"]).to(dev)
    tabs = {s: c[None] for s, c in cos.items()}
    idx = {s: np.arange(len(pairs[s]["y"])) for s in cos}

    def evaluate():
        return correlations(_predict(net, tabs["dev"], idx["dev"], idx["dev"], dev), pairs["dev"]["y"])[0]

    hist = train_pairs(net, tabs["train"], idx["train"], idx["train"], pairs["train"]["y"], params=net.parameters(),
                       loss=hp["loss"], epochs=hp["mlp_epochs"], lr=hp["mlp_lr"], weight_decay=hp["weight_decay"],
                       batch_size=hp["batch_size"], seed=seed, dev=dev, evaluate=evaluate,
                       patience=hp.get("mlp_patience"), progress=progress, desc=desc)
    preds = {s: _predict(net, tabs[s], idx[s], idx[s], dev) for s in ("train", "dev", "test")}
    return {"history": hist, "best_epoch": hist["best_epoch"], "preds": preds}


def _calibrate(preds: dict, y_train: np.ndarray) -> dict:
    """A log-variance loss leaves the predictions' offset and scale free (Pearson and Spearman do not see them);
    map them onto the score scale with a least-squares line fitted on the *train* split, in place, so that the
    scatter and the worst-errors table read in score units. A positive slope changes no correlation."""
    a, b = np.polyfit(preds["train"].astype(np.float64), y_train.astype(np.float64), 1)
    for k in preds:
        preds[k] = (a * preds[k] + b).astype(np.float32)
    return {"slope": float(a), "intercept": float(b)}


def _load_autoencoder(net, path, seed: int, layers: Sequence[int]) -> dict:
    torch = _torch()
    if path is None:
        raise STSError("an autoencoder variant needs the pretrained autoencoders (sts_autoencoders output)")
    blob = load_autoencoders(path)
    if blob["layers"] != list(layers):
        raise STSError(f"{path}: autoencoders for layers {blob['layers']}, the probe uses {list(layers)}")
    key = str(seed)
    if key not in blob["states"]:
        raise STSError(f"{path}: no autoencoder for seed {seed} (has {sorted(blob['states'])})")
    state = blob["states"][key]
    own = {k: v for k, v in state.items() if k.startswith(("encoders.", "mean", "std"))}
    mine = net.state_dict()
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(mine[k].shape)}" for k, v in own.items()
              if k in mine and v.shape != mine[k].shape]
    if shapes:
        raise STSError(f"{path}: autoencoder weights do not fit the probe ({'; '.join(shapes[:3])}); were they "
                       "trained with other widths?")
    missing, unexpected = net.load_state_dict(own, strict=False)
    bad = [k for k in missing if not k.startswith("head.")]
    if bad or unexpected:
        raise STSError(f"{path}: autoencoder weights do not fit the probe (missing {bad}, unexpected {unexpected}); "
                       "were they trained with other widths?")
    return {"path": str(path), "final_heldout_mse": blob["curves"][key]["heldout_mse"][-1]}


def _pretrain_snli(net, shard_dir, corpus_path, position, layers, hp, seed, dev, progress) -> dict:
    torch = _torch()
    if shard_dir is None or corpus_path is None:
        raise STSError("an snli variant needs the SNLI corpus and its activations")
    p = snli_pairs(corpus_path)
    got, row_of_id, Xs = load_latents(shard_dir, position, layers)
    if got != list(layers):
        raise STSError(f"{shard_dir}: SNLI shards hold layers {got}, the probe uses {list(layers)}")
    r1, r2 = rows_for(row_of_id, p["id1"], "SNLI"), rows_for(row_of_id, p["id2"], "SNLI")
    net.to(dev)
    hist = train_pairs(net, torch.from_numpy(Xs), r1, r2, p["y"], params=net.parameters(), loss=hp["loss"],
                       epochs=hp["snli_epochs"], lr=hp["lr"], weight_decay=hp["weight_decay"],
                       batch_size=hp["batch_size"], seed=seed, dev=dev, progress=progress,
                       desc=f"SNLI pretraining seed {seed}")
    return {"pairs": len(p["y"]), "epochs": hist["epochs_run"], "final_loss": hist["train_loss"][-1]}


# ------------------------------------------------------------------ autoencoder artifacts
def train_autoencoders(shard_dir, *, position: str, seeds: Sequence[int], train: Mapping[str, Any], loss: str,
                       out_path, layers: Sequence[int] | None = None, device: str = "auto", progress: bool = True,
                       model: str = "", provenance: Mapping[str, Any] | None = None) -> dict:
    """Pretrain the layerwise autoencoders for every seed and save them (torch file, written atomically)."""
    torch = _torch()
    got, _, X = load_latents(shard_dir, position, layers)
    widths = layer_widths(len(got), train["bottleneck"], train.get("bottleneck_late"))
    states, curves = {}, {}
    t0 = time.time()
    for seed in seeds:
        st, cv = pretrain_autoencoders(X, widths=widths, activation=train["activation"], loss=loss,
                                       epochs=train["ae_epochs"], lr=train["ae_lr"], batch_size=train["ae_batch_size"],
                                       seed=int(seed), device=device, progress=progress)
        states[str(seed)], curves[str(seed)] = st, cv
        log.info("%s/%s autoencoders (%s) seed %s: held-out MSE by layer %s", model, position, loss, seed,
                 np.round(cv["heldout_mse"][-1], 3).tolist())
    blob = {"kind": "sts_autoencoders", "model": model, "position": position, "loss": loss, "layers": got,
            "widths": widths, "n_sentences": int(X.shape[1]), "d": int(X.shape[2]), "states": states,
            "curves": curves, "seconds": round(time.time() - t0, 2), "created": now_iso(),
            "provenance": dict(provenance or {})}
    with atomic_path(out_path) as tmp:
        torch.save(blob, tmp)
    return blob


def load_autoencoders(path) -> dict:
    torch = _torch()
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on a damaged file
        raise ArtifactError(f"{path}: unreadable autoencoder file (corrupt?): {e}") from None
    if not isinstance(blob, dict) or blob.get("kind") != "sts_autoencoders":
        raise ArtifactError(f"{path}: not an autoencoder artifact")
    return blob


def autoencoder_curve_rows(blob: Mapping[str, Any]) -> list[dict]:
    """One row per (seed, layer): the final held-out reconstruction MSE (the paper's Figure 2)."""
    out = []
    for seed, cv in blob["curves"].items():
        for j, L in enumerate(blob["layers"]):
            out.append({"model": blob["model"], "position": blob["position"], "loss": blob["loss"], "seed": int(seed),
                        "layer": L, "width": blob["widths"][j], "heldout_mse": cv["heldout_mse"][-1][j],
                        "heldout_mse_first_epoch": cv["heldout_mse"][0][j]})
    return out


# ------------------------------------------------------------------ tables
def progression_frame(results: Sequence[Mapping[str, Any]], order: Sequence[str] | None = None):
    """The progression table: one row per (model, position, variant)."""
    import pandas as pd

    rows = []
    for r in results:
        s = r["summary"]
        paper = PAPER_GPT2_MEDIUM.get(r["variant"], (float("nan"), float("nan")))
        best = r["runs"][0].get("layer") if r["spec"]["head"] == "best_layer" else None
        rows.append({"model": r["model"], "pooling": r["position"], "variant": r["variant"],
                     "n_seeds": s["n_seeds"] if r["spec"]["head"] != "best_layer" else 0,
                     "test_pearson": s["test_pearson"], "test_pearson_std": s["test_pearson_std"],
                     "test_spearman": s["test_spearman"], "test_spearman_std": s["test_spearman_std"],
                     "dev_pearson": s["dev_pearson"], "dev_spearman": s["dev_spearman"],
                     "layer": best, "paper_gpt2_medium_pearson": paper[0], "paper_gpt2_medium_spearman": paper[1]})
    df = pd.DataFrame(rows)
    if order:
        df["_o"] = df["variant"].map({v: i for i, v in enumerate(order)})
        df = df.sort_values(["model", "pooling", "_o"]).drop(columns="_o")
    return df.reset_index(drop=True)


def _pm(m: float, s: float, seeds: int) -> str:
    if not np.isfinite(m):
        return "n/a"
    return f"{m:.2f} ± {s:.2f}" if seeds > 1 else f"{m:.2f}"


def progression_markdown(df) -> str:
    lines = ["| model | pooling | variant | test Pearson | test Spearman | dev Pearson | seeds | paper gpt2-medium "
             "(P / S) |", "|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        paper = ("—" if not np.isfinite(r["paper_gpt2_medium_pearson"]) else
                 f"{r['paper_gpt2_medium_pearson']:.2f} / {r['paper_gpt2_medium_spearman']:.2f}")
        var = r["variant"] + (f" (layer {int(r['layer'])})" if r["layer"] is not None and np.isfinite(r["layer"])
                              else "")
        lines.append(f"| {r['model']} | {r['pooling']} | {var} | "
                     f"{_pm(r['test_pearson'], r['test_pearson_std'], r['n_seeds'])} | "
                     f"{_pm(r['test_spearman'], r['test_spearman_std'], r['n_seeds'])} | {r['dev_pearson']:.2f} | "
                     f"{r['n_seeds'] or '—'} | {paper} |")
    return "\n".join(lines) + "\n"


def worst_errors(result: Mapping[str, Any], corpus_path, k: int = 20):
    """The test pairs with the largest |prediction − truth| of ``result`` (mean prediction over seeds)."""
    import pandas as pd

    pairs = stsb_pairs(corpus_path, ("test",))["test"]
    if pairs["id"] != result["test_ids"]:
        raise STSError(f"{corpus_path}: the test split differs from the one the {result['variant']} result was "
                       "scored on")
    pred = np.mean([r["test_pred"] for r in result["runs"]], axis=0)
    err = np.abs(pred - pairs["y"])
    top = np.argsort(-err, kind="stable")[:k]
    return pd.DataFrame({"id": [pairs["id"][i] for i in top], "sentence1": [pairs["s1"][i] for i in top],
                         "sentence2": [pairs["s2"][i] for i in top], "gold": pairs["y"][top] * 5,
                         "predicted": pred[top] * 5, "abs_error": err[top] * 5})


def worst_errors_markdown(df, result: Mapping[str, Any]) -> str:
    lines = [f"Worst test errors of **{result['model']} / {result['position']} / {result['variant']}** (chosen on "
             "dev; scores on the 0–5 scale, prediction averaged over seeds)", "",
             "| id | sentence 1 | sentence 2 | gold | predicted | |error| |", "|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        s1, s2 = (str(x).replace("|", "\\|") for x in (r["sentence1"], r["sentence2"]))
        lines.append(f"| {r['id']} | {s1} | {s2} | {r['gold']:.2f} | {r['predicted']:.2f} | {r['abs_error']:.2f} |")
    return "\n".join(lines) + "\n"


def write_tables(result_paths: Sequence[str | os.PathLike], corpus_path, *, tsv, md, worst_tsv, worst_md,
                 order: Sequence[str] | None = None, k: int = 20) -> None:
    results = [read_json(p) for p in result_paths]
    for p, r in zip(result_paths, results):
        if r.get("kind") != "sts_variant":
            raise ArtifactError(f"{p}: not an STS variant result")
    df = progression_frame(results, order)
    with atomic_path(tsv) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    write_text(md, progression_markdown(df))
    best = best_result(results)
    wdf = worst_errors(best, corpus_path, k)
    with atomic_path(worst_tsv) as tmp:
        wdf.to_csv(tmp, sep="\t", index=False, float_format="%.3f")
    write_text(worst_md, worst_errors_markdown(wdf, best))


__all__ = ["stsb_pairs", "snli_pairs", "load_latents", "correlations", "pair_cosines", "layer_curve", "run_variant",
           "train_autoencoders", "load_autoencoders", "autoencoder_curve_rows", "progression_frame",
           "progression_markdown", "worst_errors", "write_tables", "PAPER_GPT2_MEDIUM", "STSError"]
