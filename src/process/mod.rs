//! The spawn path: the runtime side (`spawn`), the container init (`init`), the channel
//! between them (`sync`) and what both init and exec apply before execve (`setup`).

pub mod attrs;
pub(crate) mod clone;
pub mod exec;
pub mod init;
pub mod lsm;
pub mod setup;
pub mod spawn;
pub mod sync;
