//! `llm-export modelfile`: a Modelfile for an existing GGUF, and the push to a local Ollama.

use crate::args::{ModelfileArgs, OllamaArgs};
use llm_export::formats::gguf::GgufFile;
use llm_export::io::{FsDir, InputDir, InputFile};
use llm_export::ollama::{self, Blob, Modelfile, ModelfileSpec, Progress, PushRequest};
use llm_export::{Error, Result};
use std::path::Path;

/// Opens `path` as an input file (its folder as the input directory).
fn open_file(path: &Path) -> Result<(FsDir, String, InputFile)> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} is not a file", path.display())))?
        .to_string_lossy()
        .into_owned();
    let dir = FsDir::open(parent)?;
    let file = dir.require(&name, "expected a GGUF file")?;
    Ok((dir, name, file))
}

pub fn run_modelfile(a: ModelfileArgs) -> Result<()> {
    let (dir, gguf_name, file) = open_file(&a.gguf)?;
    let gguf = GgufFile::read(&file)?;
    let mut spec = ModelfileSpec::from_gguf(&gguf, &gguf_name);
    let adapter = match &a.adapter {
        Some(path) => {
            let (_, name, file) = open_file(path)?;
            if path.parent() != a.gguf.parent() {
                return Err(Error::usage("--adapter must be in the same folder as the GGUF (the Modelfile names both relative to itself)"));
            }
            spec.adapter_file = Some(name.clone());
            Some(Blob {
                name,
                file,
                digest: None,
            })
        }
        None => None,
    };
    let modelfile = ollama::modelfile(&spec)?;
    if !a.report.json && !a.report.quiet {
        for w in &modelfile.warnings {
            eprintln!("warning: {w}");
        }
    }
    let written = if a.print {
        print!("{}", modelfile.render());
        None
    } else {
        let path = dir.path().join("Modelfile");
        if path.exists() && !a.overwrite {
            return Err(Error::usage(format!(
                "{} already exists; pass --overwrite to replace it",
                path.display()
            )));
        }
        let partial = path.with_file_name("Modelfile.partial");
        std::fs::write(&partial, modelfile.render())
            .map_err(|e| Error::io(partial.display(), e))?;
        std::fs::rename(&partial, &path).map_err(|e| Error::io(path.display(), e))?;
        Some(path.display().to_string())
    };
    if let Some(name) = &a.ollama.ollama_create {
        push(
            &a.ollama,
            name,
            &modelfile,
            Blob {
                name: gguf_name,
                file,
                digest: None,
            },
            adapter,
            a.report.json || a.report.quiet,
        )?;
    }
    if a.report.json {
        let json = serde_json::json!({
            "modelfile": written,
            "family": format!("{:?}", modelfile.family),
            "warnings": modelfile.warnings,
            "pushed": a.ollama.ollama_create,
        });
        println!("{json}");
    } else if let Some(path) = written.filter(|_| !a.report.quiet) {
        println!("{path}");
    }
    Ok(())
}

/// Creates model `name` in the Ollama at `--ollama-host`, with status lines on stderr.
pub fn push(
    args: &OllamaArgs,
    name: &str,
    modelfile: &Modelfile,
    model: Blob,
    adapter: Option<Blob>,
    quiet: bool,
) -> Result<()> {
    let request = PushRequest {
        name,
        modelfile,
        model,
        adapter,
    };
    ollama::push_native(&args.ollama_host, &request, &mut |p| {
        if quiet {
            return;
        }
        match p {
            Progress::Hashing { .. } | Progress::Uploading { .. } => {}
            other => eprintln!("ollama: {other:?}"),
        }
    })
}
