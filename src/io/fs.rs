//! Native files: input folders on disk and an output folder that stages everything under a
//! hidden temporary folder and moves it into place only when the whole export succeeded.

use super::{InputDir, InputFile, OutputDir, OutputFile, ReadAt};
use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file read with positioned reads, so worker threads can share it without seeking.
struct DiskFile {
    file: File,
    len: u64,
}

impl ReadAt for DiskFile {
    fn len(&self) -> u64 {
        self.len
    }

    #[cfg(unix)]
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    #[cfg(windows)]
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(&self.file, buf, offset)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// A folder on disk.
pub struct FsDir {
    root: PathBuf,
}

impl FsDir {
    /// Opens `root`, which must be an existing directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let meta = fs::metadata(&root).map_err(|e| Error::io(root.display(), e))?;
        if !meta.is_dir() {
            return Err(Error::usage(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        Ok(FsDir { root })
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.root
    }
}

impl InputDir for FsDir {
    fn display(&self) -> String {
        self.root.display().to_string()
    }

    fn open(&self, name: &str) -> Result<Option<InputFile>> {
        let path = self.root.join(name);
        let shown = path.display().to_string();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(shown, e)),
        };
        let len = file.metadata().map_err(|e| Error::io(&shown, e))?.len();
        Ok(Some(InputFile {
            path: shown,
            data: Arc::new(DiskFile { file, len }),
        }))
    }

    fn list(&self) -> Result<Vec<String>> {
        let shown = self.display();
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(|e| Error::io(&shown, e))? {
            let entry = entry.map_err(|e| Error::io(&shown, e))?;
            if entry
                .file_type()
                .map(|t| t.is_file() || t.is_symlink())
                .unwrap_or(false)
            {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// The output folder. Files are written under `<out>/.llm-export-staging-<pid>/` and moved to
/// their final names by [`OutputDir::publish`]; if the export fails the staging folder is removed.
pub struct FsOutput {
    out: PathBuf,
    staging: PathBuf,
    overwrite: bool,
}

impl FsOutput {
    /// Prepares `out` (created if missing). With `overwrite`, existing outputs of the same name
    /// are replaced at publish time; without it they make the export fail before any work.
    pub fn new(out: impl Into<PathBuf>, overwrite: bool) -> Result<Self> {
        let out = out.into();
        fs::create_dir_all(&out).map_err(|e| Error::io(out.display(), e))?;
        let staging = out.join(format!(".llm-export-staging-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| Error::io(staging.display(), e))?;
        }
        fs::create_dir(&staging).map_err(|e| Error::io(staging.display(), e))?;
        Ok(FsOutput {
            out,
            staging,
            overwrite,
        })
    }

    /// Fails if any of the top-level `names` already exists and overwriting was not allowed.
    pub fn check_free(&self, names: &[String]) -> Result<()> {
        if self.overwrite {
            return Ok(());
        }
        match names.iter().map(|n| self.out.join(n)).find(|p| p.exists()) {
            Some(taken) => Err(Error::usage(format!(
                "{} already exists; choose another --out or pass --overwrite to replace it",
                taken.display()
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for FsOutput {
    fn drop(&mut self) {
        // Leaves nothing behind on failure; after a successful publish the folder is empty.
        let _ = fs::remove_dir_all(&self.staging);
    }
}

struct StagedFile {
    partial: PathBuf,
    done: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer
            .as_mut()
            .expect("written after commit")
            .write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().expect("flushed after commit").flush()
    }
}

impl OutputFile for StagedFile {
    fn commit(mut self: Box<Self>) -> Result<()> {
        let shown = self.done.display().to_string();
        let file = self
            .writer
            .take()
            .expect("committed twice")
            .into_inner()
            .map_err(|e| Error::io(&shown, e.into_error()))?;
        // No fsync: like save_pretrained and llama.cpp we trust the page cache (an fsync per
        // shard doubled the wall time); the rename still guarantees no process ever sees a
        // partial file under the final name.
        drop(file);
        fs::rename(&self.partial, &self.done).map_err(|e| Error::io(&shown, e))
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

impl OutputDir for FsOutput {
    fn create(&self, name: &str) -> Result<Box<dyn OutputFile>> {
        let done = self.staging.join(name);
        if let Some(parent) = done.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        }
        let partial = done.with_file_name(format!(
            "{}.partial",
            done.file_name().unwrap_or_default().to_string_lossy()
        ));
        let file = File::create(&partial).map_err(|e| Error::io(partial.display(), e))?;
        Ok(Box::new(StagedFile {
            partial,
            done,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
        }))
    }

    fn publish(&self) -> Result<Vec<String>> {
        let shown = self.staging.display().to_string();
        let mut published = Vec::new();
        let mut entries: Vec<_> = fs::read_dir(&self.staging)
            .map_err(|e| Error::io(&shown, e))?
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(&shown, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let target = self.out.join(entry.file_name());
            if target.exists() {
                if !self.overwrite {
                    return Err(Error::usage(format!(
                        "{} appeared during the export; pass --overwrite to replace it",
                        target.display()
                    )));
                }
                let removed = if target.is_dir() {
                    fs::remove_dir_all(&target)
                } else {
                    fs::remove_file(&target)
                };
                removed.map_err(|e| Error::io(target.display(), e))?;
            }
            fs::rename(entry.path(), &target).map_err(|e| Error::io(target.display(), e))?;
            published.push(target.display().to_string());
        }
        Ok(published)
    }
}
