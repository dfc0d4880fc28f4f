//! The command line end to end on the shipped example: every output in one run, `inspect
//! --json` of the results, and a Modelfile for the GGUF.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny")
        .join(name)
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-export"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "llm-export {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run(args)).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn one_run_writes_every_output_and_each_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (base, adapter) = (fixture("tiny-llama"), fixture("lora-plain"));
    let report = json(&[
        "export",
        s(&base),
        "--adapter",
        s(&adapter),
        "--out",
        s(&out),
        "--json",
        "--to",
        "lora",
        "--to",
        "merged_16bit",
        "--to",
        "merged_4bit",
        "--to",
        "gguf:f16",
        "--to",
        "gguf:q8_0",
        "--to",
        "ollama",
    ]);
    let published: Vec<&str> = report["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(published.len(), 6, "{published:?}");

    let merged = json(&["inspect", s(&out.join("merged_16bit")), "--json"]);
    assert_eq!(
        (merged["kind"].as_str(), merged["parameters"].as_u64()),
        (Some("model"), Some(984_320))
    );
    let four = json(&["inspect", s(&out.join("merged_4bit")), "--json"]);
    assert_eq!(four["quantization"]["quant_type"], "nf4");
    let lora = json(&["inspect", s(&out.join("lora")), "--json"]);
    assert_eq!(
        (lora["kind"].as_str(), lora["r"].as_u64()),
        (Some("adapter"), Some(8))
    );

    let gguf = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| s(p).ends_with("-F16.gguf"))
        .unwrap();
    let summary = json(&["inspect", s(&gguf), "--json"]);
    assert_eq!(summary["kind"], "gguf");
    // The export's Modelfile names the first GGUF requested; `modelfile` makes the same one.
    let modelfile = std::fs::read_to_string(out.join("Modelfile")).unwrap();
    assert_eq!(run(&["modelfile", s(&gguf), "--print"]), modelfile);
    let name = gguf.file_name().unwrap().to_str().unwrap();
    assert!(modelfile.contains(&format!("FROM ./{name}")), "{modelfile}");
    assert!(
        modelfile.contains("<|im_start|>assistant")
            && modelfile.contains("PARAMETER stop \"<|im_end|>\""),
        "{modelfile}"
    );
}
