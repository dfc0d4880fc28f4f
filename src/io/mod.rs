//! Byte sources and sinks: the only place that knows where bytes live.
//!
//! Formats read through [`ReadAt`] (positioned reads of a file or blob) and write through
//! [`OutputDir`] (write-only files committed atomically), so native and browser builds share every
//! format module untouched.

// Native files exist only where the OS has them; the browser build brings its own sources.
#[cfg(any(unix, windows))]
mod fs;
mod mem;

#[cfg(any(unix, windows))]
pub use fs::{FsDir, FsOutput};
pub use mem::{MemDir, MemOutput};

use crate::error::Result;
use std::io::Write;
use std::sync::Arc;

/// Random-access, read-only bytes: a file on disk, a browser `Blob`, or memory.
pub trait ReadAt: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Fills `buf` with the bytes starting at `offset`; an error if they are not all there.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// True for an empty source.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReadAt for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A named file opened from an [`InputDir`]; the name is what error messages show.
#[derive(Clone)]
pub struct InputFile {
    /// Display path, e.g. `base/model-00001-of-00002.safetensors`.
    pub path: String,
    /// The bytes.
    pub data: Arc<dyn ReadAt>,
}

impl InputFile {
    /// Reads the whole file (for small files: JSON, tokenizers).
    pub fn read_all(&self) -> Result<Vec<u8>> {
        let mut buf = vec![0; self.data.len() as usize];
        self.data
            .read_exact_at(0, &mut buf)
            .map_err(|e| crate::Error::io(&self.path, e))?;
        Ok(buf)
    }

    /// Reads `len` bytes at `offset`, naming the file in the error.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.data
            .read_exact_at(offset, buf)
            .map_err(|e| crate::Error::io(&self.path, e))
    }
}

/// A folder of input files (a model or adapter directory, or a dropped folder in the browser).
pub trait InputDir: Send + Sync {
    /// How to name this folder in messages.
    fn display(&self) -> String;
    /// Opens the file `name` (relative to the folder), or `None` when it does not exist.
    fn open(&self, name: &str) -> Result<Option<InputFile>>;
    /// The names of the files directly in the folder, sorted.
    fn list(&self) -> Result<Vec<String>>;

    /// Opens `name`, failing with a message that says what the file is needed for.
    fn require(&self, name: &str, hint: &str) -> Result<InputFile> {
        self.open(name)?
            .ok_or_else(|| crate::Error::missing(format!("{}/{name}", self.display()), hint))
    }
}

/// A write-only file being produced; dropped without [`OutputFile::commit`] it leaves nothing.
pub trait OutputFile: Write + Send + Sync {
    /// Flushes and marks the file complete.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Where outputs go. Nothing is visible under the final names until [`OutputDir::publish`].
pub trait OutputDir: Send + Sync {
    /// Creates `name` (may contain `/` for a subfolder such as `merged_16bit/config.json`).
    fn create(&self, name: &str) -> Result<Box<dyn OutputFile>>;
    /// Moves every committed file to its final place; called once after every output succeeded.
    fn publish(&self) -> Result<Vec<String>>;
}
