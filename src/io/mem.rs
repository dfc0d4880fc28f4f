//! In-memory input folders and outputs: tests, and the browser build's glue.

use super::{InputDir, InputFile, OutputDir, OutputFile, ReadAt};
use crate::error::Result;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// An input folder whose files are byte sources held by the caller.
#[derive(Default, Clone)]
pub struct MemDir {
    name: String,
    files: BTreeMap<String, Arc<dyn ReadAt>>,
}

impl MemDir {
    /// An empty folder shown as `name` in messages.
    pub fn new(name: impl Into<String>) -> Self {
        MemDir {
            name: name.into(),
            files: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, name: impl Into<String>, data: Arc<dyn ReadAt>) {
        self.files.insert(name.into(), data);
    }
}

impl InputDir for MemDir {
    fn display(&self) -> String {
        self.name.clone()
    }
    fn open(&self, name: &str) -> Result<Option<InputFile>> {
        Ok(self.files.get(name).map(|data| InputFile {
            path: format!("{}/{name}", self.name),
            data: data.clone(),
        }))
    }
    fn list(&self) -> Result<Vec<String>> {
        Ok(self.files.keys().cloned().collect())
    }
}

/// Outputs collected in memory; committed files become visible after `publish`.
#[derive(Default, Clone)]
pub struct MemOutput {
    staged: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    published: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemOutput {
    /// The published files, by name.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.published.lock().unwrap().clone()
    }
}

struct MemFile {
    name: String,
    buf: Vec<u8>,
    staged: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl std::io::Write for MemFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl OutputFile for MemFile {
    fn commit(self: Box<Self>) -> Result<()> {
        let MemFile { name, buf, staged } = *self;
        staged.lock().unwrap().insert(name, buf);
        Ok(())
    }
}

impl OutputDir for MemOutput {
    fn create(&self, name: &str) -> Result<Box<dyn OutputFile>> {
        Ok(Box::new(MemFile {
            name: name.to_string(),
            buf: Vec::new(),
            staged: self.staged.clone(),
        }))
    }
    fn publish(&self) -> Result<Vec<String>> {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap());
        let names = staged.keys().cloned().collect();
        self.published.lock().unwrap().extend(staged);
        Ok(names)
    }
}
