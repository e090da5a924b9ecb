//! systemd socket activation (`LISTEN_FDS`/`LISTEN_PID`), as runc does: when the runtime itself
//! was handed listening sockets (fds 3 … 3+N-1, `LISTEN_PID` = the runtime's pid), they are passed
//! to the container's init as its fds 3 … 3+N-1 with `LISTEN_FDS=N` and `LISTEN_PID=1`;
//! `--preserve-fds` fds follow them.

use oci_spec::runtime::Spec;

/// The number of activation fds passed to this process (0 when none or not meant for us).
pub fn listen_fds() -> u32 {
    // Asked several times per create (preserved fds, the spec, the init's fd range); the
    // environment and our pid do not change meanwhile.
    static N: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        let n = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let for_us = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            == Some(std::process::id());
        if for_us {
            n
        } else {
            0
        }
    })
}

/// Adds `LISTEN_FDS=n` and `LISTEN_PID=1` to the process environment (n > 0).
pub fn setup_spec(spec: &mut Spec, n: u32) {
    if n == 0 {
        return;
    }
    if let Some(p) = spec.process_mut() {
        let mut env: Vec<String> = p
            .env()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="))
            .collect();
        env.push(format!("LISTEN_FDS={n}"));
        env.push("LISTEN_PID=1".to_string());
        p.set_env(Some(env));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_replaced() {
        let mut spec = Spec::default();
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_env(Some(vec!["A=1".into(), "LISTEN_FDS=9".into()]));
        setup_spec(&mut spec, 2);
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, vec!["A=1", "LISTEN_FDS=2", "LISTEN_PID=1"]);
    }
}
