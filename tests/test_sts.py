"""The FREEZE probes' pieces on small synthetic latents (no model, no workflow)."""

import numpy as np
import pytest

from repgeom import metrics, sts
from repgeom.configure.config import ConfigError, validate_config

torch = pytest.importorskip("torch")


def test_correlations_and_constant_prediction():
    gold = np.linspace(0, 1, 50)
    p, s = metrics.correlations(gold**3, gold)
    assert s == pytest.approx(100) and 80 < p < 100
    assert all(np.isnan(metrics.correlations(np.ones(50), gold)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.correlations(np.r_[np.nan, gold[1:]], gold)


def test_pair_cosines_matches_a_loop():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 10, 4)).astype(np.float32)
    r1, r2 = np.array([0, 1, 2]), np.array([3, 4, 2])
    got = sts.pair_cosines(X, r1, r2)
    assert got.shape == (3, 3)
    for i, (a, b) in enumerate(zip(r1, r2)):
        for L in range(3):
            want = X[L, a] @ X[L, b] / np.linalg.norm(X[L, a]) / np.linalg.norm(X[L, b])
            assert got[i, L] == pytest.approx(want, abs=1e-6)
    assert got[2] == pytest.approx(1.0)


def test_standardised_uses_only_the_given_rows():
    X = np.arange(24, dtype=np.float32).reshape(1, 6, 4)
    Z = sts.standardised(X, np.array([0, 1, 2]))
    assert np.allclose(Z[0, :3].mean(axis=0), 0) and np.allclose(Z[0, :3].std(axis=0), 1)
    assert Z[0, 5].mean() > 2  # rows outside the statistics are not centred


def test_layer_widths_widen_in_the_later_half():
    assert sts.layer_widths(30, 256, 512) == [256] * 15 + [512] * 15
    assert sts.layer_widths(3, 8, 16) == [8, 8, 16]
    assert sts.layer_widths(4, 8, None) == [8] * 4


def test_logvar_loss_ignores_an_offset_and_mse_does_not():
    g = torch.Generator().manual_seed(0)
    pred, y = torch.rand(64, generator=g), torch.rand(64, generator=g)
    lv, mse = sts.loss_fn("logvar"), sts.loss_fn("mse")
    assert float(lv(pred + 0.3, y)) == pytest.approx(float(lv(pred, y)), abs=1e-5)
    assert float(lv(pred, y)) == pytest.approx(float(torch.log(torch.var(pred - y))), abs=1e-6)
    shift = 0.09 + 0.6 * float((pred - y).mean())  # (e + c)^2 = e^2 + 2ce + c^2
    assert float(mse(pred + 0.3, y)) == pytest.approx(float(mse(pred, y)) + shift, abs=1e-5)
    with pytest.raises(ValueError, match="unknown loss"):
        sts.loss_fn("l1")


def _low_rank(n=400, d=16, L=2, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(L, n, 3))
    W = rng.normal(size=(L, 3, d))
    return (np.einsum("lnk,lkd->lnd", Z, W) + 0.05 * rng.normal(size=(L, n, d))).astype(np.float32)


def test_autoencoders_learn_and_are_deterministic_for_a_seed():
    X = _low_rank()
    kw = dict(widths=[4, 4], activation="none", loss="mse", epochs=15, lr=1e-2, batch_size=32, progress=False)
    s1, c1 = sts.pretrain_autoencoders(X, seed=0, **kw)
    s2, c2 = sts.pretrain_autoencoders(X, seed=0, **kw)
    s3, _ = sts.pretrain_autoencoders(X, seed=1, **kw)
    assert all(torch.equal(s1[k], s2[k]) for k in s1) and c1 == c2
    assert not torch.equal(s1["encoders.0.0.weight"], s3["encoders.0.0.weight"])
    first, last = np.array(c1["heldout_mse"][0]), np.array(c1["heldout_mse"][-1])
    assert (last < 0.2 * first).all()  # rank 3 data through a width-4 bottleneck: near-perfect reconstruction
    lv, _ = sts.pretrain_autoencoders(X, seed=0, **{**kw, "loss": "logvar"})
    assert not torch.equal(lv["encoders.0.0.weight"], s1["encoders.0.0.weight"])


def test_siamese_training_learns_a_hidden_similarity_and_keeps_the_best_dev_state():
    rng = np.random.default_rng(0)
    L, n, d = 2, 300, 12
    X = rng.normal(size=(L, n, d)).astype(np.float32)
    P = rng.normal(size=(d, 3))
    r1, r2 = rng.integers(0, n, 600), rng.integers(0, n, 600)
    a, b = X[1, r1] @ P, X[1, r2] @ P
    y = ((np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)) + 1) / 2
    torch.manual_seed(0)
    net = sts.build_modules(d, [3, 3], "none", 8)
    Xt = torch.from_numpy(X)
    dev = torch.device("cpu")

    def evaluate():
        return metrics.correlations(sts.training.predict(net, Xt, r1[500:], r2[500:], dev), y[500:])[0]

    before = evaluate()
    hist = sts.train_pairs(
        net,
        Xt,
        r1[:500],
        r2[:500],
        y[:500].astype(np.float32),
        params=net.parameters(),
        loss="mse",
        epochs=40,
        lr=1e-2,
        weight_decay=0.0,
        batch_size=32,
        seed=0,
        dev=dev,
        evaluate=evaluate,
        progress=False,
    )
    assert max(hist["dev_pearson"]) > 80 > before
    assert evaluate() == pytest.approx(max(hist["dev_pearson"]), abs=1e-6)  # the best dev state is kept
    assert hist["best_epoch"] == int(np.argmax(hist["dev_pearson"])) + 1


def test_autoencoder_weights_must_fit_the_probe(tmp_path):
    X = _low_rank(n=100)
    path = tmp_path / "ae.pt"
    st, cv = sts.pretrain_autoencoders(
        X, widths=[4, 4], activation="tanh", loss="mse", epochs=1, lr=1e-3, batch_size=32, seed=0, progress=False
    )
    torch.save({"kind": "sts_autoencoders", "layers": [1, 2], "states": {"0": st}, "curves": {"0": cv}}, path)
    ok = sts.build_modules(16, [4, 4], "tanh", 4)
    assert sts.autoencoders.load_into_probe(ok, path, 0, [1, 2])["final_heldout_mse"]
    with pytest.raises(sts.STSError, match="do not fit"):
        sts.autoencoders.load_into_probe(sts.build_modules(16, [4, 8], "tanh", 4), path, 0, [1, 2])
    with pytest.raises(sts.STSError, match="no autoencoder for seed 3"):
        sts.autoencoders.load_into_probe(ok, path, 3, [1, 2])
    with pytest.raises(sts.STSError, match="layers"):
        sts.autoencoders.load_into_probe(ok, path, 0, [1, 3])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(sts.ArtifactError, match="corrupt"):
        sts.load_autoencoders(path)


def test_missing_sentences_are_named():
    with pytest.raises(sts.STSError, match="2 test sentences have no activations"):
        sts.rows_for({"a": 0}, ["a", "b", "c"], "test")


def _cfg(**sts_cfg):
    return {
        "models": {"lm": {"runtime": "decoder", "source": {"type": "local", "path": "x"}}},
        "data": {
            "stsb": {"source": {"type": "local", "path": "s"}},
            "genericskb": {"source": [{"type": "local", "path": "g"}, {"type": "hf", "dataset": "d"}]},
        },
        "sts": sts_cfg,
    }


def test_sts_config_checks():
    from repgeom.configure.stages import sts_datasets, sts_models

    cfg = validate_config(_cfg())
    assert sts_models(cfg) == ["lm"]
    assert sts_datasets(cfg) == ["stsb", "stsb@prompteol", "genericskb", "genericskb@prompteol"]  # default templates
    assert list(cfg["sts"]["variants"])[:5] == ["best_layer", "mlp", "siamese", "ae_mse", "ae_logvar"]
    no_data = _cfg()
    del no_data["data"]["genericskb"]
    assert sts_models(validate_config(no_data)) == []  # auto: off without its corpora
    with pytest.raises(ConfigError, match=r"'sts.pretrain_corpus' = 'genericskb': no such corpus"):
        validate_config({**no_data, "sts": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"sts.variants.ae.bottleneck.*from sts.train"):
        validate_config(_cfg(variants={"ae": {"head": "siamese", "pretrain": "autoencoder", "bottleneck": 8}}))
    with pytest.raises(ConfigError, match=r"sts.variants.x.pretrain.*only a siamese"):
        validate_config(_cfg(variants={"x": {"head": "mlp", "pretrain": "autoencoder"}}))
    with pytest.raises(ConfigError, match=r"sts.variants.x.head"):
        validate_config(_cfg(variants={"x": {"head": "transformer"}}))
    with pytest.raises(ConfigError, match=r"sts.models' = 'nope': unknown model"):
        validate_config(_cfg(models=["nope"]))
    with pytest.raises(ConfigError, match=r"sts.train.epochs' = 0"):
        validate_config(_cfg(train={"epochs": 0}))
    with pytest.raises(ConfigError, match=r"'sts.positions' = \['last'\]: moved to sts.templates.<name>.positions"):
        validate_config(_cfg(positions=["last"]))
    with pytest.raises(ConfigError, match=r"sts.templates.plain': template 'plain' is the text alone"):
        validate_config(_cfg(templates={"plain": {"format": "Say {text}"}}))
    with pytest.raises(ConfigError, match=r"sts.templates.t.format"):
        validate_config(_cfg(templates={"t": {"format": "no placeholder"}}))
    with pytest.raises(ConfigError, match=r"'sts.transfer' = 'genericskb': a corpus of kind 'genericskb'"):
        validate_config(_cfg(transfer=["genericskb"]))
    with pytest.raises(ConfigError, match=r"'sts.transfer' = 'sick': no such corpus"):
        validate_config(_cfg(transfer=["sick"]))
    assert validate_config(_cfg(transfer=["stsb"]))["sts"]["transfer"] == ["stsb"]
    bad = _cfg()
    bad["data"]["genericskb"]["source"][1] = {"type": "hf"}
    with pytest.raises(ConfigError, match=r"data.genericskb.source\[1\]': a hf source needs 'dataset'"):
        validate_config(bad)
