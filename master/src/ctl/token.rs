//! `masterctl token create | list | revoke`.

use std::time::Duration;

use rigger_common::proto::{CreateTokenRequest, ListTokensRequest, RevokeTokenRequest, TokenInfo};
use rigger_common::time::format_ms;

use super::{Ctl, Output, render, status, table};

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
            "token {} expires at {}, {uses} use(s)\n",
            reply.id,
            format_ms(reply.expires_at_ms)
        ),
    })
}

/// Every token: id, role, uses left, expiry and whether it still enrolls.
pub async fn list(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let tokens = ctl
        .client()
        .list_tokens(ListTokensRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .tokens;
    let now = rigger_common::time::now_ms();
    if json {
        let tokens: Vec<_> = tokens
            .iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id,
                    "role": (!t.role.is_empty()).then_some(&t.role),
                    "created_at_ms": t.created_at_ms,
                    "expires_at_ms": t.expires_at_ms,
                    "uses_left": t.uses_left,
                    "revoked_at_ms": (t.revoked_at_ms > 0).then_some(t.revoked_at_ms),
                    "state": state(t, now),
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&tokens)?));
    }
    if tokens.is_empty() {
        return Ok("no token\n".into());
    }
    let mut t = table(&["ID", "ROLE", "USES LEFT", "EXPIRES", "CREATED", "STATE"]);
    for token in &tokens {
        t.add_row(vec![
            token.id.clone(),
            if token.role.is_empty() {
                "(unbound)".into()
            } else {
                token.role.clone()
            },
            token.uses_left.to_string(),
            format_ms(token.expires_at_ms),
            format_ms(token.created_at_ms),
            state(token, now).into(),
        ]);
    }
    Ok(render(t, &[2]))
}

/// Revokes a token by id.
pub async fn revoke(ctl: &Ctl, id: &str) -> anyhow::Result<String> {
    let token = ctl
        .client()
        .revoke_token(RevokeTokenRequest { id: id.to_string() })
        .await
        .map_err(status)?
        .into_inner();
    Ok(format!(
        "token {} revoked: no node enrolls with it any more\n",
        token.id
    ))
}

/// Whether a token still enrolls nodes.
fn state(token: &TokenInfo, now_ms: i64) -> &'static str {
    if token.revoked_at_ms > 0 {
        "revoked"
    } else if token.uses_left <= 0 {
        "used up"
    } else if token.expires_at_ms <= now_ms {
        "expired"
    } else {
        "valid"
    }
}
