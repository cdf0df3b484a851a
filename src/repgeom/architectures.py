"""The paper's model architectures, built offline as tiny random-weight models from shrunken configs.

The models of ``config/paper.yaml`` and the FREEZE decoders cannot be downloaded here, but transformers ships every
class they use except the remote-code ones. :data:`ARCHITECTURES` holds, per class, a config shrunk to a few layers
and a small width that keeps what makes the class itself (its ``architectures`` entry, grouped-query attention,
sliding windows, the position embedding, the normalisation) and the tokenizer family it comes with (byte-level BPE,
SentencePiece-style BPE with byte fallback, or Unigram), trained on a few hundred strings. :func:`build_tiny`
saves one as a transformers folder, or as a sentence-transformers folder with the model card's pooling and
normalisation, so the embedding runtimes and the activation stage run over every architecture for real.
:data:`PAPER_MODELS` maps each paper model to its class and the usage its card prescribes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import Registry


@dataclass(frozen=True)
class Architecture:
    """A model class in tiny: its config class and model class (transformers names), the tokenizer family, and
    the config keys that shrink it."""

    config_class: str
    model_class: str
    tokenizer: str  # "byte_bpe", "sp_bpe" or "unigram"
    shrink: dict = field(default_factory=dict)
    bos: bool = False  # the tokenizer prepends a BOS token (Llama, Mistral, Gemma)
    encoder: bool = False  # bidirectional encoder with [CLS]-style specials (XLM-RoBERTa)


_DECODER = {"num_hidden_layers": 3, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}
_GQA = {**_DECODER, "num_key_value_heads": 2, "max_position_embeddings": 512}

ARCHITECTURES: Registry[Architecture] = Registry("architecture")
for _name, _arch in {
    "gpt2": Architecture("GPT2Config", "GPT2LMHeadModel", "byte_bpe", {"n_layer": 3, "n_embd": 64, "n_head": 4}),
    "qwen2": Architecture("Qwen2Config", "Qwen2ForCausalLM", "byte_bpe", _GQA),
    "qwen3": Architecture("Qwen3Config", "Qwen3Model", "byte_bpe", {**_GQA, "head_dim": 16}),
    "mistral": Architecture("MistralConfig", "MistralForCausalLM", "sp_bpe", {**_GQA, "sliding_window": 8}, bos=True),
    "llama": Architecture("LlamaConfig", "LlamaForCausalLM", "sp_bpe", _GQA, bos=True),
    "gemma2": Architecture(
        "Gemma2Config",
        "Gemma2Model",
        "sp_bpe",
        {**_GQA, "head_dim": 16, "sliding_window": 8, "query_pre_attn_scalar": 16},
        bos=True,
    ),
    "gemma3": Architecture(
        "Gemma3TextConfig",
        "Gemma3TextModel",
        "sp_bpe",
        {**_GQA, "num_hidden_layers": 4, "head_dim": 16, "sliding_window": 8, "query_pre_attn_scalar": 16},
        bos=True,
    ),
    "xlm-roberta": Architecture(
        "XLMRobertaConfig",
        "XLMRobertaModel",
        "unigram",
        {**_DECODER, "max_position_embeddings": 514, "type_vocab_size": 1},
        encoder=True,
    ),
}.items():
    ARCHITECTURES.register(_name, _arch)


@dataclass(frozen=True)
class PaperModel:
    """How a paper model is built and used: its class (a key of :data:`ARCHITECTURES`, or ``remote`` for models
    whose code lives in their hub repository), the runtime and pooling its card prescribes, and the card."""

    arch: str
    runtime: str  # "sentence-transformers" or "decoder"
    pooling: str  # "mean", "lasttoken", "cls" (sentence-transformers) or "last"/"mean" (decoder)
    normalize: bool
    card: str
    dense: bool = False  # EmbeddingGemma's two Dense projections after pooling
    note: str = ""
    #: the card's usage beyond pooling: named prompts of its sentence-transformers folder, the prompt the decoder
    #: runtime puts first, whether the prompt's tokens enter the mean, the attention it embeds with
    prompts: dict = field(default_factory=dict)
    prompt: str = ""
    include_prompt: bool = True
    attention: str = "causal"


QWEN3_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"

PAPER_MODELS: dict[str, PaperModel] = {
    "embeddinggemma-300m": PaperModel(
        "gemma3", "sentence-transformers", "mean", True, "google/embeddinggemma-300m", dense=True,
        note="named prompts (query: 'task: search result | query: ')",
        prompts={"query": "task: search result | query: ", "document": "title: none | text: "},
    ),
    "gte-multilingual-base": PaperModel(
        "remote", "sentence-transformers", "cls", True, "Alibaba-NLP/gte-multilingual-base", note="NewModel (remote code)"
    ),
    "gte-large-en-v1.5": PaperModel(
        "remote", "sentence-transformers", "cls", True, "Alibaba-NLP/gte-large-en-v1.5", note="NewModel (remote code)"
    ),
    "nomic-embed-text-v2-moe": PaperModel(
        "remote", "sentence-transformers", "mean", True, "nomic-ai/nomic-embed-text-v2-moe",
        note="NomicBert MoE (remote code); prompts 'search_query: ' / 'search_document: '",
        prompts={"query": "search_query: ", "passage": "search_document: "},
    ),
    "multilingual-e5-large": PaperModel(
        "xlm-roberta", "sentence-transformers", "mean", True, "intfloat/multilingual-e5-large", note="'query: ' prefix"
    ),
    "qwen3-embedding-0.6b": PaperModel(
        "qwen3", "sentence-transformers", "lasttoken", True, "Qwen/Qwen3-Embedding-0.6B",
        note="left padding; instruction prompt for queries",
        prompts={"query": QWEN3_QUERY, "document": ""},
    ),
    "qwen3-embedding-4b": PaperModel("qwen3", "sentence-transformers", "lasttoken", True, "Qwen/Qwen3-Embedding-4B"),
    "qwen3-embedding-8b": PaperModel("qwen3", "sentence-transformers", "lasttoken", True, "Qwen/Qwen3-Embedding-8B"),
    "gte-qwen2-1.5b-instruct": PaperModel(
        "qwen2", "sentence-transformers", "lasttoken", True, "Alibaba-NLP/gte-Qwen2-1.5B-instruct",
        note="Qwen2 with the card's remote code (bidirectional); the tiny model runs the shipped causal class",
    ),
    "gte-qwen2-7b-instruct": PaperModel(
        "qwen2", "sentence-transformers", "lasttoken", True, "Alibaba-NLP/gte-Qwen2-7B-instruct"
    ),
    "gritlm-7b": PaperModel(
        "mistral", "decoder", "mean", True, "GritLM/GritLM-7B",
        note="bidirectional attention; mean over the text after its '<|embed|>' prompt only",
        prompt="<|embed|>\n", include_prompt=False, attention="bidirectional",
    ),
    "e5-mistral-7b-instruct": PaperModel(
        "mistral", "sentence-transformers", "lasttoken", True, "intfloat/e5-mistral-7b-instruct",
        note="instruction prompt for queries",
    ),
    "llama-embed-nemotron-8b": PaperModel(
        "llama", "decoder", "mean", True, "nvidia/llama-embed-nemotron-8b",
        note="bidirectional (its own code; the tiny model: the shipped Llama switched to bidirectional)",
        attention="bidirectional",
    ),
    "bge-multilingual-gemma2": PaperModel(
        "gemma2", "sentence-transformers", "lasttoken", True, "BAAI/bge-multilingual-gemma2"
    ),
    "gpt2-medium": PaperModel("gpt2", "decoder", "last", False, "openai-community/gpt2-medium"),
    "qwen2-0.5b": PaperModel("qwen2", "decoder", "last", False, "Qwen/Qwen2-0.5B"),
}  # fmt: skip

#: strings the tiny tokenizers are trained on: numeric sequences as the workflow renders them, and some prose
_CORPUS = [", ".join(map(str, range(i, i + 40, 1 + i % 3))) for i in range(60)] + [
    "A man is playing a guitar.",
    "Two dogs run across the snowy field.",
    "query: what is the capital of France?",
    "The quick brown fox jumps over the lazy dog.",
    "Instruct: Given a query, retrieve relevant passages\nQuery: ",
]


def tiny_tokenizer(kind: str, *, bos: bool = False, encoder: bool = False, vocab_size: int = 500) -> Any:
    """A small fast tokenizer of one family (``byte_bpe``, ``sp_bpe`` or ``unigram``), trained offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    if kind == "byte_bpe":
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    elif kind == "sp_bpe":
        tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tk.decoder = decoders.Metaspace()
        byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
        tr = trainers.BpeTrainer(vocab_size=vocab_size + 256, special_tokens=specials + byte_tokens)
    elif kind == "unigram":
        tk = Tokenizer(models.Unigram())
        tk.pre_tokenizer = pre_tokenizers.Metaspace()
        tk.decoder = decoders.Metaspace()
        tr = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>")
    else:
        raise ValueError(f"unknown tokenizer family {kind!r} (byte_bpe, sp_bpe, unigram)")
    tk.train_from_iterator(_CORPUS, trainer=tr)
    ids = {t: tk.token_to_id(t) for t in specials}
    if encoder:
        tk.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
        )
    elif bos:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", ids["<s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        cls_token="<s>" if encoder else None,
        sep_token="</s>" if encoder else None,
    )


def tiny_config(arch: str, tokenizer: Any) -> Any:
    """The class's config with its defaults (attention kind, positions, normalisation) and the shrunken sizes."""
    import transformers

    a = ARCHITECTURES.get_or_raise(arch, "architecture")
    special = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    cfg = getattr(transformers, a.config_class)(**a.shrink, **special)
    cfg.architectures = [a.model_class]
    return cfg


def build_tiny(
    arch: str,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    sentence_transformers: PaperModel | None = None,
    padding_side: str = "right",
) -> Path:
    """Save a random-weight model of ``arch`` with its tokenizer into ``out_dir``; with ``sentence_transformers``
    (a :class:`PaperModel`), a sentence-transformers folder with that card's pooling, Dense and Normalize
    modules (the transformer in ``out_dir/0_Transformer``)."""
    import torch
    import transformers

    out = Path(out_dir)
    a = ARCHITECTURES.get_or_raise(arch, "architecture")
    tok = tiny_tokenizer(a.tokenizer, bos=a.bos, encoder=a.encoder)
    tok.padding_side = padding_side
    torch.manual_seed(seed)
    model = getattr(transformers, a.model_class)(tiny_config(arch, tok)).eval()
    if sentence_transformers is None:
        model.save_pretrained(out)
        tok.save_pretrained(out)
        return out
    hf = out.parent / f".{out.name}.hf"
    model.save_pretrained(hf)
    tok.save_pretrained(hf)
    _save_sentence_transformer(hf, out, sentence_transformers, model.config.hidden_size)
    return out


def _save_sentence_transformer(hf_dir: Path, out: Path, card: PaperModel, d: int) -> None:
    import shutil

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    modules: list[Any] = [Transformer(str(hf_dir)), Pooling(d, pooling_mode=card.pooling)]
    if card.dense:  # EmbeddingGemma: d → 4d → d, no activation
        modules += [
            Dense(d, 4 * d, bias=False, activation_function=None),
            Dense(4 * d, d, bias=False, activation_function=None),
        ]
    if card.normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu", prompts=dict(card.prompts)).save(str(out))
    shutil.rmtree(hf_dir, ignore_errors=True)
