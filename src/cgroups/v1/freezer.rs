//! v1 freezer: `freezer.state` goes THAWED → FREEZING → FROZEN.
//!
//! A v1 freeze can stay in FREEZING while new tasks keep arriving (fork, a parallel `exec`), so the
//! state is written and read back repeatedly, with an occasional thaw-and-pause to let stragglers
//! settle (bounded: about 1000 rounds, < 0.5 s in total); a freeze that never settles is undone and
//! reported.

use std::path::Path;
use std::time::Duration;

use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs;

const STATE: &str = "freezer.state";

pub(crate) fn freeze(dir: &Path) -> Result<()> {
    for i in 0..1000u32 {
        if i % 50 == 49 {
            fs::write(dir, STATE, "THAWED")?;
            std::thread::sleep(Duration::from_millis(5));
        }
        fs::write(dir, STATE, "FROZEN")?;
        if i % 25 == 24 {
            std::thread::sleep(Duration::from_micros(50));
        }
        match fs::read(dir, STATE)?.trim() {
            "FROZEN" => return Ok(()),
            "FREEZING" => continue,
            other => {
                return Err(CgroupError::msg(format!(
                    "{}: unexpected state {other:?} while freezing",
                    dir.join(STATE).display()
                )))
            }
        }
    }
    let _ = fs::write(dir, STATE, "THAWED");
    Err(CgroupError::msg(format!(
        "unable to freeze {}: it stayed in FREEZING",
        dir.display()
    )))
}

pub(crate) fn thaw(dir: &Path) -> Result<()> {
    fs::write(dir, STATE, "THAWED")?;
    for _ in 0..1000 {
        if fs::read(dir, STATE)?.trim() == "THAWED" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Err(CgroupError::msg(format!(
        "unable to thaw {}",
        dir.display()
    )))
}

pub(crate) fn is_frozen(dir: &Path) -> Result<bool> {
    Ok(fs::read(dir, STATE)?.trim() == "FROZEN")
}
