//! `orch serve [--bind IP] [--port N]`: starts the dashboard on the repository's
//! store, prints its URL (with the token, random or `ORCH_SERVE_TOKEN`) and serves
//! until Ctrl-C or SIGTERM.

use anyhow::Result;

use crate::cli::ServeArgs;
use crate::ctx::Ctx;
use crate::error::BadInput;

/// Runs `orch serve`.
pub(super) async fn serve(ctx: &Ctx, args: &ServeArgs) -> Result<()> {
    let repo = ctx.open().await?;
    if !args.bind.is_loopback() {
        eprintln!(
            "orch: warning: listening on {} makes the board and its controls reachable from other machines; anyone with the URL's token can change it",
            args.bind
        );
    }
    let opts = orch_web::Options {
        bind: std::net::SocketAddr::new(args.bind, args.port),
        // A fixed token (a URL that survives restarts) comes from the environment,
        // never the command line, where other users could read it.
        token: std::env::var("ORCH_SERVE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        actor: repo.actor(),
        start: Some(orch_web::StartRun {
            program: std::env::current_exe()?,
            args: vec![
                "--repo".into(),
                repo.root().display().to_string(),
                "run".into(),
            ],
            log: repo.dir().orch_dir().join("dashboard-run.log"),
        }),
    };
    let served = match orch_web::start(repo.clone(), opts).await {
        Ok(s) => s,
        Err(orch_web::WebError::Bind { addr, source })
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            return Err(BadInput(format!(
                "cannot listen on {addr}: the port is taken, most likely by another `orch serve` (for another repository); pass --port N, or --port 0 for any free port"
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({ "url": served.url, "addr": served.addr })
        );
    } else {
        println!("{}", served.url);
        eprintln!(
            "orch: the dashboard of {} is at the URL above; Ctrl-C stops it",
            repo.root().display()
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = served.wait() => r?,
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
