//! `load_vocab` on broken or unsupported tokenizer folders: each failure names the file and says
//! what to do.

use llm_export::io::{InputDir, MemDir, ReadAt};
use llm_export::model::vocab::load_vocab;
use llm_export::model::HfConfig;
use std::path::Path;
use std::sync::Arc;

struct Bytes(Vec<u8>);

impl ReadAt for Bytes {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.as_slice().read_exact_at(offset, buf)
    }
}

/// A folder with `config.json` for `arch` and the given files.
fn folder(arch: &str, files: &[(&str, &[u8])]) -> (MemDir, HfConfig) {
    let mut dir = MemDir::new("m");
    let config = format!(r#"{{"architectures": ["{arch}"], "vocab_size": 512}}"#);
    dir.insert("config.json", Arc::new(Bytes(config.into_bytes())));
    for (name, data) in files {
        dir.insert(*name, Arc::new(Bytes(data.to_vec())));
    }
    let config = HfConfig::read(&dir.open("config.json").unwrap().unwrap()).unwrap();
    (dir, config)
}

fn error(arch: &str, files: &[(&str, &[u8])]) -> String {
    let (dir, config) = folder(arch, files);
    load_vocab(&dir, &config).unwrap_err().to_string()
}

fn fixture(case: &str, name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vocab")
            .join(case)
            .join(name),
    )
    .unwrap()
}

#[test]
fn missing_tokenizer_files() {
    let e = error("Gemma2ForCausalLM", &[]);
    assert!(e.contains("m/tokenizer.model: not found"), "{e}");
    assert!(e.contains("copy it from the base model"), "{e}");
    let e = error("Qwen2ForCausalLM", &[]);
    assert!(e.contains("m/tokenizer.json: not found"), "{e}");
    assert!(e.contains("save_pretrained"), "{e}");
}

#[test]
fn malformed_json_names_the_file() {
    let model = fixture("spm-llama", "tokenizer.model");
    let e = error(
        "LlamaForCausalLM",
        &[
            ("tokenizer.model", &model),
            ("tokenizer_config.json", b"{\"bos_token\": "),
        ],
    );
    assert!(e.contains("m/tokenizer_config.json: not valid JSON"), "{e}");
    let e = error("Qwen2ForCausalLM", &[("tokenizer.json", b"[1, 2]")]);
    assert!(
        e.contains("m/tokenizer.json: expected a JSON object"),
        "{e}"
    );
    let e = error(
        "Qwen2ForCausalLM",
        &[("tokenizer.json", b"{\"model\": {}}")],
    );
    assert!(e.contains("m/tokenizer.json: not a tokenizer.json"), "{e}");
}

#[test]
fn malformed_sentencepiece_model() {
    let model = fixture("spm-llama", "tokenizer.model");
    let e = error(
        "LlamaForCausalLM",
        &[("tokenizer.model", &model[..model.len() / 2])],
    );
    assert!(
        e.contains("m/tokenizer.model: not a SentencePiece model"),
        "{e}"
    );
    let e = error(
        "GemmaForCausalLM",
        &[("tokenizer.model", b"{\"not\": \"protobuf\"}")],
    );
    assert!(e.contains("not a SentencePiece model"), "{e}");
}

#[test]
fn unsupported_architecture_and_formats() {
    let e = error("GPTNeoXForCausalLM", &[]);
    assert!(
        e.contains("architecture GPTNeoXForCausalLM is not supported"),
        "{e}"
    );
    let (mut dir, _) = folder("LlamaForCausalLM", &[]);
    dir.insert(
        "config.json",
        Arc::new(Bytes(b"{\"model_type\": \"llama\"}".to_vec())),
    );
    let config = HfConfig::read(&dir.open("config.json").unwrap().unwrap()).unwrap();
    let e = load_vocab(&dir, &config).unwrap_err().to_string();
    assert!(e.contains("no `architectures` entry"), "{e}");
    let e = error("MistralForCausalLM", &[("tekken.json", b"{}")]);
    assert!(e.contains("Mistral-format tokenizer"), "{e}");
}

#[test]
fn vocab_size_smaller_than_the_tokenizer() {
    let json = fixture("bpe-unknown", "tokenizer.json");
    let mut dir = MemDir::new("m");
    dir.insert(
        "config.json",
        Arc::new(Bytes(
            br#"{"architectures": ["Qwen2ForCausalLM"], "vocab_size": 10}"#.to_vec(),
        )),
    );
    dir.insert("tokenizer.json", Arc::new(Bytes(json)));
    let config = HfConfig::read(&dir.open("config.json").unwrap().unwrap()).unwrap();
    let e = load_vocab(&dir, &config).unwrap_err().to_string();
    assert!(e.contains("vocab_size 10 is smaller"), "{e}");
}
