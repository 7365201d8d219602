//! `masterctl lookup NODE KEY`.

use rigger_common::proto::LookupRequest;

use super::{Ctl, status};

/// A data key's value for a node and the files that set it.
pub async fn lookup(ctl: &Ctl, node: &str, key: &str) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .lookup(LookupRequest {
            certname: node.to_string(),
            key: key.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    if !reply.found {
        return Ok(format!(
            "{key} is not set for {node} (role {})\n",
            reply.role
        ));
    }
    let mut out = format!("{key} = {}\n", reply.value);
    for (i, source) in reply.sources.iter().enumerate() {
        let how = if i == 0 { "from" } else { "under it" };
        out.push_str(&format!(
            "  {how:<9} {}: {}\n",
            source.file,
            source.value.replace('\n', "; ")
        ));
    }
    Ok(out)
}
