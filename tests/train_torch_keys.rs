//! moodgrad's MODEL_3 / MODEL_4 / legacy model (audio tower, bert-base lyrics tower, fusion head)
//! holds exactly the tensors, names and shapes of the seed's PyTorch module, so a RUN's
//! best.safetensors loads into it with `strict=True`. The reference list was written by PyTorch
//! and transformers (tools/make_seed_keys.py → tests/fixtures/train/seed_keys.json); a real run is
//! loaded into the module by tools/load_run_in_torch.py.

use moodgrad::backend::cpu::Cpu;
use moodgrad::io;
use moodgrad::nn::SeedNet;
use moodgrad::nn::text::TextEncoder;
use moodgrad::params::ParamStore;
use moodgrad::rng::Rng;
use moodgrad::text::hf::EncoderConfig;
use moodgrad::train::config::{Attention, Config};
use std::collections::BTreeMap;

#[test]
fn the_seeds_models_have_the_pytorch_modules_names_and_shapes() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/train/seed_keys.json")).expect("seed_keys.json");
    let bert = &fixture["bert_base"];
    let config_json = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": bert["vocab_size"], "hidden_size": bert["hidden_size"],
        "num_hidden_layers": bert["num_hidden_layers"], "num_attention_heads": bert["num_attention_heads"],
        "intermediate_size": bert["intermediate_size"], "max_position_embeddings": bert["max_position_embeddings"],
        "type_vocab_size": bert["type_vocab_size"], "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": 0,
    });
    let enc_cfg = EncoderConfig::from_json_str(&config_json.to_string()).expect("bert-base config");
    for (name, preset, attention) in [
        ("model3", "model3", Attention::Se),
        ("model4", "model4", Attention::Se),
        ("model3_legacy", "model3", Attention::Legacy),
    ] {
        let mut cfg = Config::preset(preset).unwrap();
        cfg.model.attention = attention;
        let mut store = ParamStore::new(Cpu::<f32>::new());
        // As `moodgrad train` builds a fine-tuned (MODEL_5) or saved encoder: under `lyrics_tower`.
        TextEncoder::new(&mut store, "lyrics_tower", &enc_cfg, &mut Rng::new(0)).unwrap();
        SeedNet::new(cfg.model_config(enc_cfg.hidden), &mut store, &mut Rng::new(0)).unwrap();
        let ours: BTreeMap<String, Vec<usize>> =
            io::state_dict(&store).unwrap().into_iter().map(|(k, t)| (k, t.shape)).collect();
        let want: BTreeMap<String, Vec<usize>> = fixture["models"][name]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()))
            .collect();
        let missing: Vec<&String> = want.keys().filter(|k| !ours.contains_key(*k)).collect();
        let extra: Vec<&String> = ours.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{name}: missing {missing:?}, unexpected {extra:?}");
        for (k, shape) in &want {
            assert_eq!(&ours[k], shape, "{name}: {k}");
        }
        println!("{name}: {} tensors, names and shapes as PyTorch's", want.len());
    }
}
