#!/usr/bin/env python3
"""Writes tests/fixtures/train/seed_keys.json: the state_dict names and shapes of the seed's bimodal
PyTorch module (tools/load_run_in_torch.py's SeedBimodal: audio tower, bert-base-uncased lyrics
tower built from its config with random weights, fusion head) for MODEL_3, MODEL_4 and MODEL_3
with the legacy attention. tests/train_torch_keys.rs checks that moodgrad's model holds exactly
these tensors, so a RUN's best.safetensors loads into the seed's module with strict=True.

    /root/.venvs/torch/bin/python tools/make_seed_keys.py
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_run_in_torch import SeedBimodal  # noqa: E402
from transformers import BertConfig  # noqa: E402

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)


def cfg(convs, attention):
    return {"model": dict(convs_per_block=convs, attention=attention, channels=[64, 128, 256, 512],
                          se_reduction=16, dropout=0.5, audio_hidden=256, audio_out=64, head_hidden=100)}


out = {}
for name, c in [("model3", cfg(1, "se")), ("model4", cfg(2, "se")), ("model3_legacy", cfg(1, "legacy"))]:
    net = SeedBimodal(c, BertConfig(**BERT_BASE))
    out[name] = {k: list(v.shape) for k, v in net.state_dict().items()}
    print(name, len(out[name]), "tensors")
dest = Path(__file__).resolve().parent.parent / "tests/fixtures/train/seed_keys.json"
dest.write_text(json.dumps({"bert_base": BERT_BASE, "models": out}, indent=0, sort_keys=True) + "\n")
print("wrote", dest, dest.stat().st_size, "bytes")
