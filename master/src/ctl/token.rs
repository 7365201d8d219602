//! `masterctl token create`.

use std::time::Duration;

use rigger_common::proto::CreateTokenRequest;
use rigger_common::time::format_ms;

use super::{Ctl, Output, status};

/// Creates a token; the token alone goes to stdout (for scripts).
pub async fn create(
    ctl: &Ctl,
    ttl: Duration,
    uses: u32,
    role: Option<String>,
    unbound: bool,
) -> anyhow::Result<Output> {
    let reply = ctl
        .client()
        .create_token(CreateTokenRequest {
            ttl_seconds: ttl.as_secs().max(1),
            uses,
            role: role.unwrap_or_default(),
            unbound,
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(Output {
        stdout: format!("{}\n", reply.token),
        stderr: format!(
            "token expires at {}, {uses} use(s)\n",
            format_ms(reply.expires_at_ms)
        ),
    })
}
