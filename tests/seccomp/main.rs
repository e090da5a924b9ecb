//! Behavioural seccomp tests: filters are loaded for real in forked children and the kernel's
//! answers are checked. They need root only for nothing (no_new_privs is set in the child), but
//! the profile tests exec /bin/busybox (Debian: busybox-static).

mod enforce;
mod notify;
mod profiles;
mod support;
mod x86;
