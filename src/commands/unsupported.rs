//! Commands whose backends are not built yet give a clear error instead of pretending.

use crate::error::{Error, Result};

pub fn run(name: &str) -> Result<i32> {
    Err(Error::msg(format!(
        "{name} is not supported by this build of rruntime yet"
    )))
}
