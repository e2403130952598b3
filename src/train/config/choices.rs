//! The config's string-valued options: each an enum that knows its TOML spellings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! choice {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// Every accepted spelling, in the order the docs list them.
            pub const NAMES: &'static [&'static str] = &[$($s),+];

            pub fn name(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$var),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown value \"{s}\"; use one of {:?}", $name::NAMES))
                })
            }
        }
    };
}

choice! {
    /// The audio tower's attention: the guide's SE block, or the notebooks' gate after fc1.
    Attention { Se = "se", Legacy = "legacy" }
}

choice! {
    /// Which towers feed the head.
    Modality { Bimodal = "bimodal", Audio = "audio", Lyrics = "lyrics" }
}

choice! {
    /// How the lyrics encoder trains: not at all (each lyric encoded once in eval mode, its vector
    /// cached), not at all but with its dropout running as the seed's notebooks left it (no cache:
    /// the vectors differ per step), entirely, or only its top `layers` layers.
    LyricsMode { Frozen = "frozen", FrozenDropout = "frozen-dropout", Finetune = "finetune", TopK = "top-k" }
}

choice! {
    /// The lyrics vector: the [CLS] position of the last hidden state (the seed's), BERT's pooler
    /// output, or the attention-masked mean over tokens.
    Pool { Cls = "cls", Pooler = "pooler", Mean = "mean" }
}

choice! {
    /// Learning-rate schedule, stepped once per epoch (see `train::schedule`).
    Scheduler { Step = "step", Cosine = "cosine", WarmupLinear = "warmup-linear" }
}

choice! {
    /// Regression loss on raw (valence, arousal).
    Loss { Mse = "mse", L1 = "l1" }
}

choice! {
    /// Spectrogram preprocessing: the guide's fixed path, or the notebook's (see FACTS.md).
    Preprocessing { Fixed = "fixed", Legacy = "legacy" }
}

choice! {
    /// The train/validate/test split: MERGE's shipped 70/15/15 or 40/30/30 files, or a seeded
    /// random 70/15/15 split.
    SplitName { Tvt70 = "tvt_70_15_15", Tvt40 = "tvt_40_30_30", Random = "random" }
}

choice! {
    /// Which weights the run ends with: the best validation epoch's (a deep copy, the default), or
    /// the last epoch's — what the seed's shallow `state_dict().copy()` really restored.
    Restore { Best = "best", Last = "last" }
}

impl LyricsMode {
    /// Frozen, with or without dropout: no lyrics parameter trains.
    pub fn is_frozen(self) -> bool {
        matches!(self, LyricsMode::Frozen | LyricsMode::FrozenDropout)
    }
}
