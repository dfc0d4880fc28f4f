//! `load_vocab` against llama.cpp's convert_hf_to_gguf.py: for every case in tests/fixtures/vocab
//! (made by tests/gen/vocab_fixtures.py) the tokenizer KVs must equal what the converter wrote, key
//! by key and in order, arrays compared by length, digest and first/last entries.
//!
//! Cases with a `reconstruct.json` use real vocabularies rebuilt from llama.cpp's
//! models/ggml-vocab-*.gguf; they need `LLM_EXPORT_LLAMA_CPP_SRC` (a llama.cpp source tree, e.g.
//! the one vendored in the llama-cpp-python 0.3.36 sdist) and are skipped, saying so, without it.

use llm_export::io::{InputDir, MemDir, ReadAt};
use llm_export::model::vocab::{load_vocab, Vocab, VocabValue};
use llm_export::model::HfConfig;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Entries shown at each end of an array (tests/gen/vocab_fixtures.py `HEAD`).
const HEAD: usize = 4;

struct Bytes(Vec<u8>);

impl ReadAt for Bytes {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.as_slice().read_exact_at(offset, buf)
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vocab")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The digest of an array as the generator computes it.
fn digest<T>(items: &[T], bytes: impl Fn(&T) -> Vec<u8>) -> String {
    let mut h = Sha256::new();
    for it in items {
        h.update(bytes(it));
    }
    format!("{:x}", h.finalize())
}

fn str_bytes(s: &&str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn summary<T: Clone + Into<Value>>(kind: &str, items: &[T], sha256: String) -> Value {
    let show = |s: &[T]| s.iter().cloned().map(Into::into).collect::<Vec<Value>>();
    json!({
        "type": format!("[{kind}]"),
        "len": items.len(),
        "sha256": sha256,
        "head": show(&items[..items.len().min(HEAD)]),
        "tail": show(&items[items.len().saturating_sub(HEAD)..]),
    })
}

/// Our KVs in the generator's JSON form.
fn our_kvs(v: &Vocab) -> Vec<Value> {
    v.kvs()
        .into_iter()
        .map(|(key, val)| {
            let mut entry = match val {
                VocabValue::Str(s) => json!({"type": "str", "value": s}),
                VocabValue::U32(n) => json!({"type": "u32", "value": n}),
                VocabValue::Bool(b) => json!({"type": "bool", "value": b}),
                VocabValue::StrArray(a) => summary("str", &a, digest(&a, str_bytes)),
                VocabValue::F32Array(a) => {
                    let wide: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
                    summary("f32", &wide, digest(a, |x| x.to_le_bytes().to_vec()))
                }
                VocabValue::I32Array(a) => {
                    summary("i32", a, digest(a, |x| x.to_le_bytes().to_vec()))
                }
            };
            entry["key"] = json!(key);
            entry
        })
        .collect()
}

// ------------------------------------------------------------------ rebuilding real vocabularies

/// The tokenizer arrays of a GGUF file (a minimal reader: only what the recipes need).
struct GgufVocab {
    tokens: Vec<String>,
    types: Vec<i32>,
    scores: Vec<f32>,
    merges: Vec<String>,
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
}

fn read_gguf_vocab(path: &Path) -> GgufVocab {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c = Cursor(&data);
    assert_eq!(c.take(4), b"GGUF");
    c.u32();
    c.u64();
    let n_kv = c.u64();
    let mut v = GgufVocab {
        tokens: vec![],
        types: vec![],
        scores: vec![],
        merges: vec![],
    };
    fn scalar_size(t: u32) -> usize {
        match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            _ => panic!("GGUF type {t}"),
        }
    }
    for _ in 0..n_kv {
        let key = c.string();
        let t = c.u32();
        match t {
            8 => {
                c.string();
            }
            9 => {
                let et = c.u32();
                let n = c.u64() as usize;
                match (key.as_str(), et) {
                    ("tokenizer.ggml.tokens", 8) => v.tokens = (0..n).map(|_| c.string()).collect(),
                    ("tokenizer.ggml.merges", 8) => v.merges = (0..n).map(|_| c.string()).collect(),
                    ("tokenizer.ggml.token_type", 5) => {
                        v.types = (0..n).map(|_| c.u32() as i32).collect()
                    }
                    ("tokenizer.ggml.scores", 6) => {
                        v.scores = (0..n).map(|_| f32::from_bits(c.u32())).collect()
                    }
                    (_, 8) => (0..n).for_each(|_| {
                        c.string();
                    }),
                    (_, et) => {
                        c.take(n * scalar_size(et));
                    }
                }
            }
            t => {
                c.take(scalar_size(t));
            }
        }
    }
    v
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

/// tokenizer.model as the generator's `rebuild` writes it with Python protobuf (fields in number
/// order): pieces, a BPE trainer spec with byte fallback, an identity normalizer.
fn spm_model(g: &GgufVocab, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut p = Vec::new();
        field_bytes(&mut p, 1, g.tokens[i].as_bytes());
        varint(&mut p, 2 << 3 | 5);
        p.extend_from_slice(&g.scores[i].to_le_bytes());
        field_varint(&mut p, 3, g.types[i] as u64);
        field_bytes(&mut out, 1, &p);
    }
    let mut trainer = Vec::new();
    field_varint(&mut trainer, 3, 2);
    field_varint(&mut trainer, 4, n as u64);
    field_varint(&mut trainer, 35, 1);
    field_bytes(&mut out, 2, &trainer);
    let mut norm = Vec::new();
    field_bytes(&mut norm, 1, b"identity");
    field_varint(&mut norm, 3, 1);
    field_varint(&mut norm, 4, 0);
    field_bytes(&mut out, 3, &norm);
    out
}

/// Adds the big file a `reconstruct.json` recipe describes; `None` when the sdist is not there.
fn rebuild(case: &Path, dir: &mut MemDir) -> Option<()> {
    let recipe = read_json(&case.join("reconstruct.json"));
    let src = std::env::var_os("LLM_EXPORT_LLAMA_CPP_SRC")?;
    let name = recipe["gguf"].as_str().unwrap();
    let g = read_gguf_vocab(&Path::new(&src).join(format!("models/ggml-vocab-{name}.gguf")));
    let (file, bytes, got) = if recipe["kind"] == "spm" {
        let bytes = spm_model(&g, recipe["pieces"].as_u64().unwrap() as usize);
        let d = format!("{:x}", Sha256::digest(&bytes));
        ("tokenizer.model", bytes, d)
    } else {
        let n = recipe["base_vocab"].as_u64().unwrap() as usize;
        let mut skel = read_json(&case.join("tokenizer.skeleton.json"));
        let vocab: Map<String, Value> = (0..n).map(|i| (g.tokens[i].clone(), json!(i))).collect();
        skel["model"]["vocab"] = Value::Object(vocab);
        skel["model"]["merges"] = if recipe["merges"] == "pairs" {
            g.merges
                .iter()
                .map(|m| json!(m.split(' ').collect::<Vec<_>>()))
                .collect()
        } else {
            json!(g.merges)
        };
        let items: Vec<&str> = g.tokens[..n]
            .iter()
            .chain(&g.merges)
            .map(String::as_str)
            .collect();
        let d = digest(&items, str_bytes);
        ("tokenizer.json", serde_json::to_vec(&skel).unwrap(), d)
    };
    assert_eq!(
        recipe["digest"].as_str(),
        Some(got.as_str()),
        "{}: rebuilt {file} differs from the generator's",
        case.display()
    );
    dir.insert(file, Arc::new(Bytes(bytes)));
    Some(())
}

// ------------------------------------------------------------------ the cases

/// The case folder as a MemDir (without the generator's own files) and its config.
fn open_case(case: &Path) -> Option<(MemDir, HfConfig)> {
    let mut dir = MemDir::new(case.file_name().unwrap().to_string_lossy());
    for entry in std::fs::read_dir(case).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !matches!(
            name.as_str(),
            "expected.json" | "reconstruct.json" | "tokenizer.skeleton.json"
        ) {
            dir.insert(name, Arc::new(Bytes(std::fs::read(&p).unwrap())));
        }
    }
    if case.join("reconstruct.json").exists() {
        rebuild(case, &mut dir)?;
    }
    let config = HfConfig::read(&dir.open("config.json").unwrap().unwrap()).unwrap();
    Some((dir, config))
}

fn check_case(name: &str) {
    let case = fixtures().join(name);
    let expected = read_json(&case.join("expected.json"));
    let Some((dir, config)) = open_case(&case) else {
        // Written to the stderr handle, not with eprintln!, so the test harness does not hide it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {name}: set LLM_EXPORT_LLAMA_CPP_SRC to a llama.cpp source tree (with \
             models/ggml-vocab-*.gguf) to check this real vocabulary"
        );
        return;
    };
    let got = load_vocab(&dir, &config);
    if expected["ok"] == false {
        let err = got
            .expect_err("the converter failed on this case")
            .to_string();
        if let Some(hash) = expected["chkhsh"].as_str() {
            assert!(err.contains(hash), "{name}: {err}");
            assert!(err.contains("not recognized by llama.cpp"), "{name}: {err}");
        }
        return;
    }
    let vocab = got.unwrap_or_else(|e| panic!("{name}: {e}"));
    let ours = our_kvs(&vocab);
    let theirs = expected["kvs"].as_array().unwrap();
    let keys = |v: &[Value]| v.iter().map(|e| e["key"].to_string()).collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(theirs), "{name}: keys or their order");
    for (a, b) in ours.iter().zip(theirs) {
        assert_eq!(a, b, "{name}: {}", b["key"]);
    }
}

macro_rules! cases {
    ($($test:ident => $name:literal,)*) => {
        $(#[test] fn $test() { check_case($name); })*

        #[test]
        fn every_fixture_has_a_test() {
            let mut on_disk: Vec<String> = std::fs::read_dir(fixtures()).unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
            on_disk.sort();
            let mut listed = vec![$($name.to_string()),*];
            listed.sort();
            assert_eq!(on_disk, listed);
        }
    };
}

cases! {
    spm_llama => "spm-llama",
    spm_mistral_add_prefix_space => "spm-mistral-prefix",
    spm_codellama_fim_ids => "spm-codellama",
    spm_granite_size_drops_bos => "spm-granite-size",
    spm_gemma => "spm-gemma",
    spm_gemma2 => "spm-gemma2",
    spm_gemma3 => "spm-gemma3",
    spm_phi3 => "spm-phi3",
    bpe_unknown_pre_tokenizer => "bpe-unknown",
    hf_llama_without_tokenizer_model => "hf-llama-no-spm",
    hf_mistral_without_tokenizer_model => "hf-mistral-no-spm",
    real_llama2_spm => "real-llama-spm",
    real_phi3 => "real-phi3",
    real_llama3_bpe => "real-llama3",
    real_phi4_style_gpt2 => "real-phi4-gpt2",
    real_qwen25 => "real-qwen25",
    real_qwen3 => "real-qwen3",
}
