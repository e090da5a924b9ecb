//! Command-line definitions: runc's global flags and subcommands, with their quirks
//! (`--flag=value` and `--flag value`, Go-style single-dash long flags such as `-no-subreaper`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub const SPEC_VERSION: &str = "1.2.0";

/// What `--version` prints after the program name: runc's shape ("runc version 1.1.5",
/// "commit: …", "spec: …"); Docker parses the first line as `<name> version <version>`.
fn long_version() -> &'static str {
    concat!(
        "version ",
        env!("CARGO_PKG_VERSION"),
        "\ncommit: ",
        env!("RRUNTIME_COMMIT"),
        "\nspec: 1.2.0"
    )
}

#[derive(Parser, Debug)]
#[command(
    name = "rruntime",
    version = long_version(),
    long_version = long_version(),
    about = "An OCI container runtime (a drop-in replacement for runc)",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Print version information
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version, global = false)]
    pub version: Option<bool>,
    /// Enable debug logging
    #[arg(long)]
    pub debug: bool,
    /// Write the runtime's log to this file (default: stderr)
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Root directory for container state
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Path to criu (checkpoint/restore)
    #[arg(long, value_name = "PATH", default_value = "criu")]
    pub criu: String,
    /// Use systemd to manage cgroups
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto
    #[arg(long, value_name = "true|false|auto")]
    pub rootless: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (it waits for `start`)
    Create(CreateArgs),
    /// Start a created container
    Start(IdArg),
    /// Create and start a container, and wait for it unless --detach
    Run(RunArgs),
    /// Output the state of a container
    State(IdArg),
    /// Send a signal to the container's init (or to all its processes)
    Kill(KillArgs),
    /// Delete a container and its resources
    Delete(DeleteArgs),
    /// List the containers
    List(ListArgs),
    /// Create a new config.json
    Spec(SpecArgs),
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// List the processes running in a container
    Ps(PsArgs),
    /// Suspend all processes of a container
    Pause(IdArg),
    /// Resume all processes of a paused container
    Resume(IdArg),
    /// Show resource statistics and OOM notifications of a container
    Events(EventsArgs),
    /// Update the resource limits of a container
    Update(UpdateArgs),
    /// Show the features this runtime supports (runtime-spec features JSON)
    Features,
    /// Checkpoint a running container (CRIU)
    Checkpoint(CheckpointArgs),
    /// Restore a container from a checkpoint (CRIU)
    Restore(RestoreArgs),
}

#[derive(Args, Debug, Clone)]
pub struct IdArg {
    /// Container id
    pub id: String,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CreateArgs {
    /// Path to the bundle directory (default: the current directory)
    #[arg(short = 'b', long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Unix socket to send the pseudoterminal master to
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket to send a pidfd of the container's init to
    #[arg(long = "pidfd-socket", value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
    /// File to write the container init's pid to
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (move the rootfs with MS_MOVE and chroot)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra file descriptors (3 … 3+N-1) to the container
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Container id
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// Do not make the runtime a child subreaper
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
}

#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    /// Send the signal to all processes in the container
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Container id
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number; default TERM
    pub signal: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct DeleteArgs {
    /// Kill the container first if it is running
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Container id
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// Output format: table or json
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print only the container ids
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    /// Directory to write config.json into
    #[arg(short = 'b', long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ExecArgs {
    /// Unix socket to send the pseudoterminal master to
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket to send a pidfd of the new process to
    #[arg(long = "pidfd-socket", value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Set an environment variable (NAME=VALUE)
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// User id (uid[:gid])
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Path to a process.json (OCI Process) to run
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Detach from the process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label for the process
    #[arg(long = "process-label", value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the process
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass N extra file descriptors to the process
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Run the process in an existing sub-cgroup of the container: PATH (all hierarchies) or
    /// CONTROLLER[,CONTROLLER]:PATH, once per controller
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Allow exec into a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Container id
    pub id: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `ps [--format|-f table|json] ID [PS-ARGS…]`: like runc, flags are only recognised before
/// the container id; everything after it goes to ps(1) untouched (`ps ID -f`, `ps ID -o pid`).
#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// Output format: table or json
    #[arg(short = 'f', long, default_value = "table", value_name = "table|json")]
    pub format: String,
    /// Container id, then the arguments passed to ps(1) (default: -ef)
    #[arg(
        required = true,
        value_name = "ID [PS-ARGS]",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 1..
    )]
    pub args: Vec<String>,
}

impl PsArgs {
    pub fn id(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or_default()
    }
    pub fn ps_args(&self) -> &[String] {
        self.args.get(1..).unwrap_or_default()
    }
}

#[derive(Args, Debug, Clone)]
pub struct EventsArgs {
    /// Interval between stats lines, a Go duration (5s, 500ms, 1m30s)
    #[arg(
        long,
        default_value = "5s",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub interval: String,
    /// Print the stats once and exit
    #[arg(long)]
    pub stats: bool,
    /// Container id
    pub id: String,
}

/// `update`: values are strings parsed by the command itself so that a bad value gives runc's
/// one-line "invalid value for …" error instead of a usage screen.
#[derive(Args, Debug, Clone, Default)]
pub struct UpdateArgs {
    /// LinuxResources JSON file, or - for stdin (all other options are then ignored)
    #[arg(short = 'r', long, value_name = "FILE|-")]
    pub resources: Option<String>,
    /// Block IO weight (10-1000)
    #[arg(long = "blkio-weight", value_name = "N", allow_hyphen_values = true)]
    pub blkio_weight: Option<String>,
    /// CPU CFS period (µs)
    #[arg(long = "cpu-period", value_name = "N", allow_hyphen_values = true)]
    pub cpu_period: Option<String>,
    /// CPU CFS quota (µs per period; -1 unlimited)
    #[arg(long = "cpu-quota", value_name = "N", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPU CFS burst (µs)
    #[arg(long = "cpu-burst", value_name = "N", allow_hyphen_values = true)]
    pub cpu_burst: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share", value_name = "N", allow_hyphen_values = true)]
    pub cpu_share: Option<String>,
    /// CPU realtime period (µs)
    #[arg(long = "cpu-rt-period", value_name = "N", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<String>,
    /// CPU realtime runtime (µs)
    #[arg(long = "cpu-rt-runtime", value_name = "N", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<String>,
    /// CPUs to use (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "LIST", allow_hyphen_values = true)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use
    #[arg(long = "cpuset-mems", value_name = "LIST", allow_hyphen_values = true)]
    pub cpuset_mems: Option<String>,
    /// SCHED_IDLE for the cgroup: 0 or 1
    #[arg(long = "cpu-idle", value_name = "N", allow_hyphen_values = true)]
    pub cpu_idle: Option<String>,
    /// Kernel memory limit (obsolete; accepted and ignored, like runc)
    #[arg(long = "kernel-memory", hide = true, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP memory limit (obsolete; accepted and ignored, like runc)
    #[arg(long = "kernel-memory-tcp", hide = true, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 unlimited)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit)
    #[arg(
        long = "memory-reservation",
        value_name = "SIZE",
        allow_hyphen_values = true
    )]
    pub memory_reservation: Option<String>,
    /// Total memory + swap limit (-1 unlimited)
    #[arg(long = "memory-swap", value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (-1 unlimited)
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Intel RDT/CAT L3 cache schema
    #[arg(long = "l3-cache-schema", allow_hyphen_values = true)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema
    #[arg(long = "mem-bw-schema", allow_hyphen_values = true)]
    pub mem_bw_schema: Option<String>,
    /// Container id
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// criu writes \0 to this FD once lazy-pages is ready
    #[arg(long = "status-fd", default_value_t = -1, allow_hyphen_values = true)]
    pub status_fd: i32,
    /// ADDRESS:PORT of the page server
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    #[arg(short = 'b', long)]
    pub bundle: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// LSM profile for the restored process (TYPE:NAME)
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restore
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

/// Rewrites Go-style single-dash long flags (`-root`, `-no-subreaper`, `-pid-file=x`) into
/// `--…` so that callers written against runc's flag parser (go-runc) work unchanged.
///
/// Arguments are OS strings: a path argument need not be UTF-8 (`--root`, `--log`, `--bundle`),
/// and clap reports a non-UTF-8 value where a string is required as a usage error.
pub fn normalize_args(args: Vec<OsString>) -> Vec<OsString> {
    use clap::CommandFactory;
    // Building clap's command tree costs time and memory: only do it when some argument
    // could be a Go-style long flag.
    let candidate = |a: &OsString| {
        let b = a.as_bytes();
        b.len() > 2 && b[0] == b'-' && b[1] != b'-' && b[1].is_ascii_alphabetic()
    };
    if !args.iter().skip(1).any(candidate) {
        return args;
    }
    let cmd = Cli::command();
    let mut longs: Vec<String> = Vec::new();
    collect_longs(&cmd, &mut longs);
    let mut out = Vec::with_capacity(args.len());
    let mut after_dashdash = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || after_dashdash {
            out.push(a);
            continue;
        }
        if a == "--" {
            after_dashdash = true;
            out.push(a);
            continue;
        }
        let b = a.as_bytes();
        if b.len() > 2 && b[0] == b'-' && b[1] != b'-' {
            let name = b[1..].split(|&c| c == b'=').next().unwrap_or_default();
            if longs.iter().any(|l| l.as_bytes() == name) {
                let mut long = OsString::from("-");
                long.push(&a);
                out.push(long);
                continue;
            }
        }
        out.push(a);
    }
    out
}

fn collect_longs(cmd: &clap::Command, out: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        if let Some(l) = a.get_long() {
            if l.len() > 1 && !out.iter().any(|x| x == l) {
                out.push(l.to_string());
            }
        }
    }
    for s in cmd.get_subcommands() {
        collect_longs(s, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let v = normalize_args(args.iter().map(OsString::from).collect());
        Cli::try_parse_from(v).expect("parse")
    }

    #[test]
    fn global_flags_both_forms() {
        let c = parse(&[
            "rruntime",
            "--root=/x",
            "--log",
            "/l",
            "--log-format=json",
            "state",
            "a",
        ]);
        assert_eq!(c.global.root.as_deref(), Some(std::path::Path::new("/x")));
        assert_eq!(c.global.log.as_deref(), Some(std::path::Path::new("/l")));
        assert_eq!(c.global.log_format, LogFormat::Json);
        assert!(matches!(c.command, Command::State(IdArg { ref id }) if id == "a"));
    }

    #[test]
    fn go_style_single_dash_flags() {
        let c = parse(&[
            "rruntime",
            "-root",
            "/r",
            "run",
            "-no-subreaper",
            "-d",
            "id",
        ]);
        assert_eq!(c.global.root.as_deref(), Some(std::path::Path::new("/r")));
        match c.command {
            Command::Run(r) => {
                assert!(r.no_subreaper && r.detach);
                assert_eq!(r.create.id, "id");
            }
            _ => panic!("wrong command"),
        }
    }

    #[test]
    fn kill_positional_signal_and_all() {
        match parse(&["rruntime", "kill", "--all", "c1", "KILL"]).command {
            Command::Kill(k) => {
                assert!(k.all);
                assert_eq!(k.signal.as_deref(), Some("KILL"));
            }
            _ => panic!(),
        }
    }

    #[test]
    fn exec_trailing_args_keep_dashes() {
        match parse(&["rruntime", "exec", "-t", "c1", "ls", "-la"]).command {
            Command::Exec(e) => {
                assert!(e.tty);
                assert_eq!(e.command, vec!["ls", "-la"]);
            }
            _ => panic!(),
        }
    }

    #[test]
    fn non_utf8_arguments_do_not_panic() {
        use std::os::unix::ffi::OsStringExt;
        let bad = |s: &[u8]| OsString::from_vec(s.to_vec());
        // A non-UTF-8 path is a valid path.
        let v = normalize_args(vec![
            "rruntime".into(),
            "-root".into(),
            bad(b"/tmp/\xff"),
            "state".into(),
            "a".into(),
        ]);
        let c = Cli::try_parse_from(v).expect("parse");
        assert_eq!(
            c.global.root.as_deref().map(|p| p.as_os_str().as_bytes()),
            Some(&b"/tmp/\xff"[..])
        );
        // A non-UTF-8 id or flag is a usage error, not a panic.
        for args in [
            vec!["rruntime".into(), "state".into(), bad(b"\xff")],
            vec!["rruntime".into(), bad(b"-\xff"), "list".into()],
            vec!["rruntime".into(), bad(b"\xff")],
        ] {
            assert!(Cli::try_parse_from(normalize_args(args)).is_err());
        }
    }

    #[test]
    fn ps_flags_only_before_the_id() {
        match parse(&["rruntime", "ps", "-f", "json", "c1"]).command {
            Command::Ps(p) => {
                assert_eq!(p.format, "json");
                assert_eq!(p.id(), "c1");
                assert!(p.ps_args().is_empty());
            }
            _ => panic!(),
        }
        match parse(&["rruntime", "ps", "c1", "-f", "-e", "--format", "x"]).command {
            Command::Ps(p) => {
                assert_eq!(p.format, "table");
                assert_eq!(p.id(), "c1");
                assert_eq!(p.ps_args(), ["-f", "-e", "--format", "x"]);
            }
            _ => panic!(),
        }
    }

    #[test]
    fn negative_values_for_update_and_events() {
        match parse(&[
            "rruntime",
            "update",
            "--memory",
            "-1",
            "--cpu-quota=-1",
            "c1",
        ])
        .command
        {
            Command::Update(u) => {
                assert_eq!(u.memory.as_deref(), Some("-1"));
                assert_eq!(u.cpu_quota.as_deref(), Some("-1"));
                assert_eq!(u.id, "c1");
            }
            _ => panic!(),
        }
        match parse(&["rruntime", "update", "-r", "-", "c1"]).command {
            Command::Update(u) => assert_eq!(u.resources.as_deref(), Some("-")),
            _ => panic!(),
        }
        match parse(&["rruntime", "events", "--interval", "-1s", "c1"]).command {
            Command::Events(e) => assert_eq!(e.interval, "-1s"),
            _ => panic!(),
        }
    }

    #[test]
    fn rootless_value_forms() {
        assert_eq!(
            parse(&["rruntime", "--rootless", "auto", "list"])
                .global
                .rootless
                .as_deref(),
            Some("auto")
        );
        assert_eq!(
            parse(&["rruntime", "--rootless=false", "list"])
                .global
                .rootless
                .as_deref(),
            Some("false")
        );
    }
}
