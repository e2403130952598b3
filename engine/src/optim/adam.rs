//! Adam / AdamW over named parameter groups, as `torch.optim.Adam(param_groups)`, with its state
//! exported and loaded by parameter name.

use crate::backend::{AdamStep, Backend, DeviceBuffer};
use crate::error::{Error, Result};
use crate::io::{HostData, HostTensor, TensorFile, host_tensor, upload_host};
use crate::params::{ParamId, ParamStore, Slot};
use std::collections::BTreeMap;
use std::path::Path;

/// Hyper-parameters shared by every group: PyTorch's defaults (the seed's lr 1e-3 is also
/// PyTorch's). `lr` and `weight_decay` are those of the default group.
#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW (decoupled decay) instead of Adam's L2 term.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }
}

/// A named group of parameters chosen by name prefix, with its own learning rate and weight
/// decay (`{"params": …, "lr": …, "weight_decay": …}` in PyTorch).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    pub name: String,
    /// A parameter joins the first group one of whose prefixes starts its name; the rest join
    /// the default group.
    pub prefixes: Vec<String>,
    pub lr: f64,
    pub weight_decay: f64,
}

/// The group every parameter not claimed by a prefix belongs to.
pub const DEFAULT_GROUP: &str = "default";

struct Group {
    spec: ParamGroup,
    /// The learning rate now (schedulers change it); `spec.lr` is the initial one.
    lr: f64,
}

/// First and second moments and the step count of one parameter.
struct Moments<B: Backend> {
    exp_avg: B::Buf,
    exp_avg_sq: B::Buf,
    step: u64,
}

/// Per-parameter moments, created on a parameter's first update (a frozen parameter, which
/// never gets a gradient, never gets moments).
pub struct Adam<B: Backend> {
    pub config: AdamConfig,
    groups: Vec<Group>,
    state: BTreeMap<ParamId, Moments<B>>,
}

impl<B: Backend> Adam<B> {
    /// One group holding every parameter, at `config.lr`.
    pub fn new(config: AdamConfig) -> Self {
        Self::with_groups(config, Vec::new())
    }

    /// Named groups (checked in order) plus the default group at `config.lr` for the rest.
    pub fn with_groups(config: AdamConfig, groups: Vec<ParamGroup>) -> Self {
        let mut all: Vec<Group> = groups.into_iter().map(|spec| Group { lr: spec.lr, spec }).collect();
        let default = ParamGroup {
            name: DEFAULT_GROUP.into(),
            prefixes: Vec::new(),
            lr: config.lr,
            weight_decay: config.weight_decay,
        };
        all.push(Group { lr: default.lr, spec: default });
        Adam { config, groups: all, state: BTreeMap::new() }
    }

    /// The index of the group a parameter name belongs to.
    pub fn group_of(&self, name: &str) -> usize {
        self.groups
            .iter()
            .position(|g| g.spec.prefixes.iter().any(|p| name.starts_with(p.as_str())))
            .unwrap_or(self.groups.len() - 1)
    }

    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }
    pub fn group(&self, i: usize) -> &ParamGroup {
        &self.groups[i].spec
    }
    /// The learning rate of group `i` now.
    pub fn lr(&self, i: usize) -> f64 {
        self.groups[i].lr
    }
    pub fn set_lr(&mut self, i: usize, lr: f64) {
        self.groups[i].lr = lr;
    }
    /// (group name, learning rate now) for every group, for logs.
    pub fn lrs(&self) -> Vec<(String, f64)> {
        self.groups.iter().map(|g| (g.spec.name.clone(), g.lr)).collect()
    }

    /// Updates every trainable parameter that has a gradient; `grad_scale` (the clip coefficient)
    /// multiplies each gradient inside the same pass.
    pub fn step(&mut self, store: &mut ParamStore<B>, grad_scale: f64) -> Result<()> {
        let be = store.backend.clone();
        for id in store.param_ids() {
            let Some(g) = store.grad(id).cloned() else { continue };
            let group = &self.groups[self.group_of(store.name(id))];
            let (lr, weight_decay) = (group.lr, group.spec.weight_decay);
            let m = match self.state.entry(id) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let n = g.len();
                    e.insert(Moments { exp_avg: be.zeros(n)?, exp_avg_sq: be.zeros(n)?, step: 0 })
                }
            };
            m.step += 1;
            let c = &self.config;
            let hp = AdamStep {
                lr,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay,
                decoupled: c.decoupled,
                step: m.step,
                grad_scale,
            };
            be.adam_update(store.value_mut(id).buf_mut(), &g, &mut m.exp_avg, &mut m.exp_avg_sq, &hp)?;
        }
        Ok(())
    }

    /// The state as tensors `<name>.exp_avg`, `<name>.exp_avg_sq` (the parameter's shape) and
    /// `<name>.step` (int64 scalar), with the groups and hyper-parameters in the metadata.
    pub fn export_state(&self, store: &ParamStore<B>) -> Result<TensorFile> {
        let be = &store.backend;
        let mut file = TensorFile::default();
        for (&id, m) in &self.state {
            let (name, shape) = (store.name(id), store.value(id).shape());
            file.tensors.insert(format!("{name}.exp_avg"), host_tensor(be, shape, &m.exp_avg)?);
            file.tensors.insert(format!("{name}.exp_avg_sq"), host_tensor(be, shape, &m.exp_avg_sq)?);
            file.tensors.insert(format!("{name}.step"), HostTensor::i64(&[], vec![m.step as i64]));
        }
        let groups: Vec<serde_json::Value> = self
            .groups
            .iter()
            .map(|g| {
                serde_json::json!({"name": g.spec.name, "prefixes": g.spec.prefixes, "initial_lr": g.spec.lr,
                    "lr": g.lr, "weight_decay": g.spec.weight_decay})
            })
            .collect();
        let c = &self.config;
        file.metadata.insert("optimizer".into(), if c.decoupled { "AdamW" } else { "Adam" }.into());
        file.metadata.insert("groups".into(), serde_json::Value::Array(groups).to_string());
        file.metadata.insert("betas".into(), serde_json::json!([c.beta1, c.beta2]).to_string());
        file.metadata.insert("eps".into(), c.eps.to_string());
        Ok(file)
    }

    /// Loads a state written by `export_state` (or converted from PyTorch by
    /// tools/optim_state.py). Everything is checked before anything changes: an entry for a name
    /// that is not a parameter of the model, a parameter with only some of its three entries, a
    /// shape that differs, a step that is not a whole number, or groups and hyper-parameters
    /// that differ from this optimiser's are errors naming the tensor and the file. A frozen
    /// parameter may have state (PyTorch keeps the moments of a parameter frozen mid-training);
    /// it is kept, unused, until the parameter trains again.
    pub fn load_state(&mut self, store: &ParamStore<B>, path: &Path, file: &TensorFile) -> Result<()> {
        let be = &store.backend;
        let mut names: Vec<&str> = file.tensors.keys().filter_map(|k| k.strip_suffix(".step")).collect();
        names.sort_unstable();
        for key in file.tensors.keys() {
            let base = [".exp_avg_sq", ".exp_avg", ".step"].iter().find_map(|s| key.strip_suffix(s));
            match base {
                Some(b) if names.binary_search(&b).is_ok() => {}
                Some(b) => {
                    return Err(Error::file(
                        path,
                        format!("missing optimiser entry `{b}.step` (the file has `{key}`)"),
                    ));
                }
                None => return Err(Error::file(path, format!("`{key}` is not an optimiser entry"))),
            }
        }
        self.check_hyper_parameters(path, file)?;
        let mut fresh = BTreeMap::new();
        for name in names {
            let id = store
                .find(name)
                .filter(|&id| matches!(store.entries()[id.0].slot, Slot::Param { .. }))
                .ok_or_else(|| {
                    Error::file(path, format!("optimiser state for `{name}`, which is not a parameter of this model"))
                })?;
            let shape = store.value(id).shape();
            let moment = |suffix: &str| -> Result<B::Buf> {
                let key = format!("{name}.{suffix}");
                let t = file
                    .tensors
                    .get(&key)
                    .ok_or_else(|| Error::file(path, format!("missing optimiser entry `{key}`")))?;
                if t.shape != shape {
                    return Err(Error::file(
                        path,
                        format!("`{key}` has shape {:?} but the parameter has shape {shape:?}", t.shape),
                    ));
                }
                upload_host(be, path, &key, t)
            };
            let (exp_avg, exp_avg_sq) = (moment("exp_avg")?, moment("exp_avg_sq")?);
            // I64 from moodgrad; a float from hand-converted PyTorch state (torch keeps `step` as
            // a float tensor), accepted only when it is a whole number.
            let step = match &file.tensors[&format!("{name}.step")].data {
                HostData::I64(v) if v.len() == 1 && v[0] >= 0 => Some(v[0] as u64),
                HostData::F32(v) if v.len() == 1 => whole(v[0] as f64),
                HostData::F64(v) if v.len() == 1 => whole(v[0]),
                _ => None,
            }
            .ok_or_else(|| Error::file(path, format!("`{name}.step` is not a whole non-negative scalar")))?;
            fresh.insert(id, Moments { exp_avg, exp_avg_sq, step });
        }
        let lrs = self.group_lrs_from(path, file)?;
        for (g, lr) in self.groups.iter_mut().zip(lrs) {
            g.lr = lr;
        }
        self.state = fresh;
        Ok(())
    }

    /// The optimiser kind, betas and eps a state was saved with must be this optimiser's: the
    /// moments mean something else under other ones (PyTorch would adopt the saved values; here the
    /// run's configuration decides, so a difference is refused rather than silently changed).
    fn check_hyper_parameters(&self, path: &Path, file: &TensorFile) -> Result<()> {
        let c = &self.config;
        let ours = if c.decoupled { "AdamW" } else { "Adam" };
        if let Some(kind) = file.metadata.get("optimizer")
            && kind != ours
        {
            return Err(Error::file(path, format!("the optimiser state is {kind}'s but this run uses {ours}")));
        }
        if let Some(text) = file.metadata.get("betas") {
            let saved: Vec<f64> = serde_json::from_str(text)
                .map_err(|e| Error::file(path, format!("the `betas` metadata `{text}` is not a JSON list: {e}")))?;
            if saved != [c.beta1, c.beta2] {
                return Err(Error::file(
                    path,
                    format!(
                        "the optimiser state was saved with betas {saved:?}, this run has [{}, {}]",
                        c.beta1, c.beta2
                    ),
                ));
            }
        }
        if let Some(text) = file.metadata.get("eps") {
            let saved: f64 =
                text.parse().map_err(|_| Error::file(path, format!("the `eps` metadata `{text}` is not a number")))?;
            if saved != c.eps {
                return Err(Error::file(
                    path,
                    format!("the optimiser state was saved with eps {saved:e}, this run has {:e}", c.eps),
                ));
            }
        }
        Ok(())
    }

    /// The current learning rate of each of this optimiser's groups, from a state file's
    /// metadata (absent metadata keeps the current rates). The saved groups must be this
    /// optimiser's: the same names in the same order, the same prefixes (so every parameter's
    /// moments stay in its group) and the same weight decay.
    fn group_lrs_from(&self, path: &Path, file: &TensorFile) -> Result<Vec<f64>> {
        let Some(text) = file.metadata.get("groups") else { return Ok(self.groups.iter().map(|g| g.lr).collect()) };
        let saved: Vec<serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| Error::file(path, format!("the `groups` metadata is not JSON: {e}")))?;
        let names: Vec<&str> = saved.iter().filter_map(|g| g["name"].as_str()).collect();
        let ours: Vec<&str> = self.groups.iter().map(|g| g.spec.name.as_str()).collect();
        if names != ours {
            return Err(Error::file(
                path,
                format!("the optimiser state has parameter groups {names:?} but this run has {ours:?}"),
            ));
        }
        for (g, ours) in saved.iter().zip(&self.groups) {
            let name = &ours.spec.name;
            let prefixes: Option<Vec<&str>> =
                g["prefixes"].as_array().map(|a| a.iter().filter_map(|p| p.as_str()).collect());
            let our_prefixes: Vec<&str> = ours.spec.prefixes.iter().map(String::as_str).collect();
            if prefixes.as_ref().is_some_and(|p| *p != our_prefixes) {
                return Err(Error::file(
                    path,
                    format!(
                        "group `{name}` was saved with prefixes {:?}, this run has {our_prefixes:?}",
                        prefixes.unwrap_or_default()
                    ),
                ));
            }
            if let Some(wd) = g["weight_decay"].as_f64()
                && wd != ours.spec.weight_decay
            {
                return Err(Error::file(
                    path,
                    format!(
                        "group `{name}` was saved with weight_decay {wd}, this run has {} (set the run's to \
                         the saved one, or start the optimiser afresh)",
                        ours.spec.weight_decay
                    ),
                ));
            }
        }
        saved
            .iter()
            .map(|g| g["lr"].as_f64().ok_or_else(|| Error::file(path, format!("group {} has no lr", g["name"]))))
            .collect()
    }

    /// The step count of a parameter's moments (None before its first update).
    pub fn step_count(&self, id: ParamId) -> Option<u64> {
        self.state.get(&id).map(|m| m.step)
    }
}

/// A float step count as a whole non-negative number.
fn whole(x: f64) -> Option<u64> {
    (x >= 0.0 && x.fract() == 0.0 && x < 2f64.powi(53)).then_some(x as u64)
}
