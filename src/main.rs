//! rruntime's entry point: parse the command line (runc's contract), set up logging, dispatch,
//! turn errors into one line on stderr (and the log) and a non-zero exit status.
//!
//! `no_main`: the C `main` below is called by libc directly, without Rust's `lang_start`, which
//! spends ~0.1 ms of every start on things a short-lived runtime does not use (reading
//! /proc/self/maps to locate the main thread's stack guard, an alternate signal stack and
//! handlers for a stack-overflow message, naming the main thread). The two things of it rruntime
//! relies on are done in [`process_init`]; `std::env::args_os` works without it (glibc passes
//! argv to Rust's init-array hook), and every path out ends in `std::process::exit`, which
//! flushes stdout.
#![no_main]

use clap::Parser;
use rruntime::cli::{normalize_args, Cli, Command, LogFormat};
use rruntime::commands::{self, Ctx};
use rruntime::logging;

/// Fills holes in fds 3 … 3+n-1 with /dev/null so none of the runtime's own fds lands in the
/// range passed to the container with --preserve-fds.
fn reserve_preserved_fds(n: u32) {
    for fd in 3..3 + n as i32 {
        // SAFETY: probing and filling fd numbers.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                let nul = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if nul >= 0 && nul != fd {
                    libc::dup2(nul, fd);
                    libc::close(nul);
                }
            }
        }
    }
}

fn dispatch(cli: &Cli) -> rruntime::Result<i32> {
    if let Command::Spec(a) = &cli.command {
        return commands::spec::run(a);
    }
    if let Command::Features = &cli.command {
        return commands::features::run();
    }
    let ctx = Ctx::new(&cli.global)?;
    match &cli.command {
        Command::Create(a) => commands::create::run(&ctx, a),
        Command::Start(a) => commands::start::run(&ctx, &a.id),
        Command::Run(a) => commands::run::run(&ctx, a),
        Command::State(a) => commands::state::run(&ctx, &a.id),
        Command::Kill(a) => commands::kill::run(&ctx, a),
        Command::Delete(a) => commands::delete::run(&ctx, a),
        Command::List(a) => commands::list::run(&ctx, a),
        Command::Exec(a) => commands::exec::run(&ctx, a),
        Command::Ps(a) => commands::ps::run(&ctx, a),
        Command::Pause(a) => commands::pause::run(&ctx, &a.id),
        Command::Resume(a) => commands::resume::run(&ctx, &a.id),
        Command::Events(a) => commands::events::run(&ctx, a),
        Command::Update(a) => commands::update::run(&ctx, a),
        Command::Checkpoint(a) => commands::checkpoint::run(&ctx, a, &cli.global.criu),
        Command::Restore(a) => commands::restore::run(&ctx, a, &cli.global.criu),
        Command::Spec(_) | Command::Features => unreachable!("handled above"),
    }
}

/// What rruntime needs of Rust's usual start-up: fds 0–2 open (a runtime started with one closed
/// would otherwise hand its own next fd — a lock, the state dir — to the container as stdio), and
/// SIGPIPE ignored (writing to a closed pipe is an error to report, not a silent death; the init
/// resets every signal before `execve`).
fn process_init() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: three valid pollfds; opening /dev/null fills the lowest free fd, the closed one.
    unsafe {
        let polled = loop {
            match libc::poll(fds.as_mut_ptr(), 3, 0) {
                -1 if nix::errno::Errno::last() == nix::errno::Errno::EINTR => continue,
                r => break r >= 0,
            }
        };
        for p in &fds {
            let closed = if polled {
                p.revents & libc::POLLNVAL != 0
            } else {
                libc::fcntl(p.fd, libc::F_GETFD) == -1
            };
            if closed && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != p.fd {
                libc::abort();
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// The process entry point (see the module doc).
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    process_init();
    run()
}

fn run() -> ! {
    // args_os: std::env::args() panics on an argument that is not UTF-8.
    let args = normalize_args(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // --help/--version print and exit 0; usage errors exit 1 like runc.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let preserve = match &cli.command {
        Command::Create(a) => a.preserve_fds + rruntime::activation::listen_fds(),
        Command::Run(a) => a.create.preserve_fds + rruntime::activation::listen_fds(),
        Command::Exec(a) => a.preserve_fds,
        _ => 0,
    };
    if preserve > 0 {
        // fds 3 … 3+N-1 must be able to exist: a larger N is a mistake (and would make the
        // runtime and the init walk billions of fd numbers).
        let max = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft.saturating_sub(3))
            .unwrap_or(1024);
        if u64::from(preserve) > max {
            logging::init(
                cli.global.log.as_deref(),
                cli.global.log_format == LogFormat::Json,
                false,
            );
            logging::error_line(&format!(
                "--preserve-fds {preserve}: more than the {max} descriptors the open file limit allows"
            ));
            std::process::exit(1);
        }
        reserve_preserved_fds(preserve);
    }
    logging::init(
        cli.global.log.as_deref(),
        cli.global.log_format == LogFormat::Json,
        cli.global.debug,
    );
    std::panic::set_hook(Box::new(|info| {
        logging::error_line(&format!("internal error (please report): {info}"));
    }));
    let result = std::panic::catch_unwind(|| dispatch(&cli));
    let code = match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            logging::error_line(&e.to_string());
            // Foreground exec reports runtime errors as 255, like runc.
            if matches!(cli.command, Command::Exec(_)) {
                255
            } else {
                1
            }
        }
        Err(_) => 1,
    };
    std::process::exit(code);
}
