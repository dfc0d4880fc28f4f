//! The `llm-export` command line: parses arguments, wires the library, reports.

mod args;
mod ollama;
mod progress;
mod report;

use args::{Cli, Command, ExportArgs, InspectArgs};
use clap::Parser;
use llm_export::export::{export, ExportOptions, OutputKind, Plan};
use llm_export::formats::hf_index::parse_size;
use llm_export::inspect::{inspect_dir, inspect_file};
use llm_export::io::{FsDir, FsOutput, InputDir};
use llm_export::lora::Adapter;
use llm_export::model::{BaseModel, FloatType};
use llm_export::{Error, Result};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Export(a) => a.report.json,
        Command::Inspect(a) => a.report.json,
        Command::Modelfile(a) => a.report.json,
    };
    let result = match cli.command {
        Command::Export(a) => run_export(a),
        Command::Inspect(a) => run_inspect(a),
        Command::Modelfile(a) => ollama::run_modelfile(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_dir(path: &std::path::Path) -> Result<Arc<dyn InputDir>> {
    Ok(Arc::new(FsDir::open(path)?))
}

fn run_export(a: ExportArgs) -> Result<()> {
    let started = Instant::now();
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::usage(e.to_string()))?;
    }
    let options = ExportOptions {
        outputs: a
            .outputs
            .iter()
            .map(|o| o.parse())
            .collect::<Result<Vec<OutputKind>>>()?,
        dtype: a
            .dtype
            .as_deref()
            .map(|d| match FloatType::parse(d) {
                Some(t @ (FloatType::Bf16 | FloatType::F16)) => Ok(t),
                _ => Err(Error::usage(format!("--dtype {d}: expected bf16 or f16"))),
            })
            .transpose()?,
        max_shard_size: parse_size(&a.max_shard_size)?,
        allow_nonfinite: a.allow_nonfinite,
    };
    let base = BaseModel::open(open_dir(&a.base)?)?;
    let adapter = a
        .adapter
        .as_deref()
        .map(|p| Adapter::open(open_dir(p)?))
        .transpose()?;
    let plan = Plan::new(&base, adapter.as_ref(), options)?;
    let out = FsOutput::new(&a.out, a.overwrite)?;
    out.check_free(&plan.top_level_names())?;
    let show = !a.report.json && !a.report.quiet;
    if show {
        for note in &plan.notes {
            eprintln!("note: {note}");
        }
    }
    if a.ollama.ollama_create.is_some() && plan.modelfile.is_none() {
        return Err(Error::usage(
            "--ollama-create needs --to ollama (and a --to gguf:<type>)",
        ));
    }
    let bar = progress::Bar::new(show);
    let report = export(&base, adapter.as_ref(), &plan, &out, &|e| bar.on_event(e))?;
    bar.finish();
    if let (Some(name), Some(modelfile)) = (&a.ollama.ollama_create, &plan.modelfile) {
        let gguf = modelfile.from.trim_start_matches("./");
        let file = FsDir::open(&a.out)?.require(gguf, "written by this export")?;
        let model = llm_export::ollama::Blob {
            name: gguf.to_string(),
            file,
            digest: None,
        };
        ollama::push(&a.ollama, name, modelfile, model, None, !show)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    if a.report.json {
        println!(
            "{}",
            serde_json::json!({ "outputs": report.published, "notes": report.notes, "seconds": seconds })
        );
    } else if !a.report.quiet {
        for p in &report.published {
            println!("{p}");
        }
        eprintln!("done in {seconds:.1}s");
    }
    Ok(())
}

fn run_inspect(a: InspectArgs) -> Result<()> {
    let summary = if a.path.is_dir() {
        inspect_dir(open_dir(&a.path)?)?
    } else {
        let parent = a
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let name = a
            .path
            .file_name()
            .ok_or_else(|| Error::usage(format!("{} is not a file or folder", a.path.display())))?;
        let file = FsDir::open(parent)?.require(
            &name.to_string_lossy(),
            "inspect takes a model folder, an adapter folder, a .safetensors or a .gguf file",
        )?;
        inspect_file(file)?
    };
    if a.report.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serializes")
        );
    } else {
        print!("{}", report::describe(&summary, a.tensors));
    }
    Ok(())
}
