#!/usr/bin/env python3
"""Loads a moodgrad RUN's best.safetensors into the seed's PyTorch module with strict=True.

The seed's bimodal module (FACTS.md): ``audio_tower`` (tools/seed_model.py's AudioTower),
``lyrics_tower`` (a transformers ``BertModel``: the built-in encoder's RUN/lyrics_encoder/config.json,
or the Hugging Face folder the run named), ``classifier_head`` (Dropout, Linear, ReLU, Dropout,
Linear) over concat(audio, lyrics [CLS]), and ``quadrant_head`` when the run trained one.

A frozen Hugging Face encoder's weights are not in best.safetensors (moodgrad computes its vectors
once and never trains them): pass ``--encoder DIR`` and they are taken from that folder, as the
seed's ``BertModel.from_pretrained`` does.

    tools/load_run_in_torch.py RUN [--encoder DIR] [--keys-out KEYS.json] [--check-predict AUDIO_NPY LYRIC_TXT]

``--keys-out`` writes the module's state_dict names and shapes (what tests/train_torch_keys.rs
compares moodgrad's against). Needs torch, transformers, safetensors (the torch venv).
"""

import argparse
import json
import sys
import tomllib
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_model import AttentionModule, AudioTower, SEAttention  # noqa: E402


class AnyDepthAudioTower(AudioTower):
    """seed_model.AudioTower with any number of blocks (MaxPool2d after every block but the last,
    as the seed's four), so the small test and demo configs load too. Same module names."""

    def __init__(self, model, attention, channels, dropout, hidden, out, se_reduction=16):
        nn.Module.__init__(self)
        self.attention_kind = attention
        convs_per_block = 1 if model == "model3" else 2
        layers, cin = [], 1
        for i, c in enumerate(channels):
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
                cin = c
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2, 2))
        if attention == "se":
            layers.append(SEAttention(cin, r=se_reduction))
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        if attention == "se":
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, hidden), nn.ReLU(),
                                            nn.Dropout(dropout), nn.Linear(hidden, out))
        else:
            self.dropout1, self.fc1, self.relu1 = nn.Dropout(dropout), nn.Linear(cin, hidden), nn.ReLU()
            self.dropout2, self.attention = nn.Dropout(dropout), AttentionModule(hidden)
            self.fc2 = nn.Linear(hidden, out)


class SeedBimodal(nn.Module):
    """The seed's MER model: audio tower, BERT lyrics tower ([CLS]), fusion head."""

    def __init__(self, cfg: dict, bert_config, modality="bimodal", quadrant_head=False):
        super().__init__()
        from transformers import BertModel

        m = cfg["model"]
        model = "model3" if m["convs_per_block"] == 1 else "model4"
        self.modality = modality
        width = 0
        if modality != "lyrics":
            if len(m["channels"]) == 4 and m["se_reduction"] == 16:
                self.audio_tower = AudioTower(model, m["attention"], m["channels"], m["dropout"],
                                              m["audio_hidden"], m["audio_out"])
            else:
                self.audio_tower = AnyDepthAudioTower(model, m["attention"], m["channels"], m["dropout"],
                                                      m["audio_hidden"], m["audio_out"], m["se_reduction"])
            width += m["audio_out"]
        if modality != "audio":
            self.lyrics_tower = BertModel(bert_config)
            width += bert_config.hidden_size
        self.classifier_head = nn.Sequential(
            nn.Dropout(m["dropout"]), nn.Linear(width, m["head_hidden"]), nn.ReLU(),
            nn.Dropout(m["dropout"]), nn.Linear(m["head_hidden"], 2))
        if quadrant_head:
            self.quadrant_head = nn.Sequential(nn.Dropout(m["dropout"]), nn.Linear(width, 4))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--encoder", type=Path, help="the Hugging Face folder of a frozen encoder")
    ap.add_argument("--keys-out", type=Path)
    a = ap.parse_args()
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    cfg = tomllib.loads((a.run / "config.toml").read_text())
    modality = cfg["model"]["modality"]
    state = load_file(str(a.run / "best.safetensors"))
    bert_config = None
    if modality != "audio":
        if cfg["lyrics"]["model"] == "builtin":
            bert_config = BertConfig.from_json_file(str(a.run / "lyrics_encoder" / "config.json"))
        else:
            enc = a.encoder or Path(cfg["lyrics"]["model"])
            bert_config = BertConfig.from_pretrained(str(enc))
            if not any(k.startswith("lyrics_tower.") for k in state):
                print(f"frozen encoder: lyrics_tower.* from {enc}")
                bert = BertModel.from_pretrained(str(enc))
                state.update({f"lyrics_tower.{k}": v for k, v in bert.state_dict().items()})
    net = SeedBimodal(cfg, bert_config, modality, cfg["train"]["quadrant_loss"] > 0)
    # BertModel(config) adds a pooler; moodgrad keeps it only when the checkpoint or pooling has one.
    want = net.state_dict()
    pooler = [k for k in want if k.startswith("lyrics_tower.pooler.")]
    if pooler and not any(k in state for k in pooler):
        net.lyrics_tower.pooler = None
        print("no pooler in the run: BertModel built without one (add_pooling_layer=False)")
    missing, unexpected = net.load_state_dict(state, strict=True)
    print(f"strict=True: loaded {len(state)} tensors into the seed's module "
          f"(missing {len(missing)}, unexpected {len(unexpected)})")
    if a.keys_out:
        keys = {k: list(v.shape) for k, v in net.state_dict().items()}
        a.keys_out.write_text(json.dumps(keys, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(keys)} names and shapes to {a.keys_out}")


if __name__ == "__main__":
    main()
