//! Notifications carried out (`[notify]`): for each journal event the core's
//! `orch_core::notify::notifies` picks, once it is durable, its JSON goes to
//! `notify.command` on stdin and is POSTed to `notify.webhook`. A failure is logged
//! and never touches the run; the run waits for the last ones (10 s at most) before
//! it ends, so its end is told too.

use std::sync::Arc;
use std::time::Duration;

use orch_core::run::Journaled;
use orch_validate::{CancellationToken, CommandSpec, Environment, Program};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::exec::Ctx;

/// The notification's JSON.
fn body(ctx: &Ctx, e: &Journaled) -> String {
    serde_json::json!({
        "run": ctx.run.0,
        "at": e.at.as_millis(),
        "kind": e.event.kind(),
        "reason": e.event.reason(),
        "event": e.event,
    })
    .to_string()
}

/// Tells what `[notify]` names about `e`.
pub(crate) async fn send(ctx: Arc<Ctx>, e: Journaled) {
    let json = body(&ctx, &e);
    let n = &ctx.cfg.config.notify;
    if !n.command.trim().is_empty()
        && let Err(why) = command(&ctx, &n.command, &json).await
    {
        tracing::warn!(command = %n.command, error = %why, "notify.command failed");
    }
    if !n.webhook.trim().is_empty()
        && let Err(why) = webhook(n.webhook.trim(), &json).await
    {
        tracing::warn!(webhook = %n.webhook, error = %why, "notify.webhook failed");
    }
}

async fn command(ctx: &Ctx, line: &str, json: &str) -> Result<(), String> {
    let spec = CommandSpec {
        program: Program::Shell(line.to_owned()),
        cwd: ctx.git.workdir(),
        env: Environment::inherit(
            &ctx.cfg.config.agent.env_allow,
            vec![("ORCH_RUN_ID".into(), ctx.run.0.clone())],
        ),
        timeout: Duration::from_secs(30),
        kill_grace: Duration::from_secs(2),
        log_path: ctx.cfg.artifacts_root.join(&ctx.run.0).join("notify.log"),
        log_cap: 1 << 20,
        stdin: Some(format!("{json}\n").into_bytes()),
        capture_stdout: None,
        hard_kill: None,
        log_frame: true,
    };
    let r = ctx
        .procs
        .run(&spec, &CancellationToken::new(), None)
        .await
        .map_err(|e| e.to_string())?;
    match r.outcome.success() {
        true => Ok(()),
        false => Err(format!("{} (log: {})", r.outcome, r.log_path.display())),
    }
}

/// POSTs `json` to a plain `http://HOST[:PORT]/PATH`; a non-2xx answer is an error.
async fn webhook(url: &str, json: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = match host.contains(':') {
        true => host.to_owned(),
        false => format!("{host}:80"),
    };
    let post = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nUser-Agent: orch\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(Duration::from_secs(10), post)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = String::from_utf8_lossy(&head[9..12]).into_owned();
    match status.starts_with('2') {
        true => Ok(()),
        false => Err(format!("answered {status}")),
    }
}
