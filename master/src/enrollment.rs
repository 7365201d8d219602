//! Enrollment: a node's CSR is signed in exchange for one use of a valid
//! bootstrap token, and the node enters the inventory with the role the
//! token binds. Also the creation of those tokens.

use std::net::SocketAddr;
use std::time::Duration;

use rigger_common::time::{format_ms, now_ms};

use crate::error::{Error, Result};
use crate::state::MasterState;
use crate::store::{CertRecord, TokenRecord};
use crate::tokens;

/// Longest a token may live.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a node gets back from enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// The CA, PEM.
    pub ca_cert_pem: String,
    /// The raw ed25519 key that signs every catalog.
    pub catalog_signing_key: Vec<u8>,
}

/// A new bootstrap token, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The token.
    pub token: String,
    /// When it expires, Unix ms.
    pub expires_at_ms: i64,
    /// Its id ([`tokens::id`]).
    pub id: String,
}

/// Checks a certname: lower-case letters, digits, `.`, `-` and `_`, not
/// starting with `.` or `-`, at most 253 characters.
pub fn validate_certname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "certname {name:?} is not valid: use lower-case letters, digits, '.', '-' and '_'"
        )))
    }
}

/// Creates a token for `uses` enrollments within `ttl`, binding `role`
/// (which must exist) to the nodes enrolled with it. A token without a role
/// must say so (`unbound`): its nodes choose their role, and its secrets.
pub async fn create_token(
    state: &MasterState,
    ttl: Duration,
    uses: u32,
    role: Option<String>,
    unbound: bool,
) -> Result<NewToken> {
    if role.is_none() && !unbound {
        return Err(Error::InvalidArgument(
            "a token binds a role (--role ROLE); to let its nodes choose theirs by --role or their rigger:role tag, and get that role's secrets, say --unbound".into(),
        ));
    }
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err(Error::InvalidArgument(
            "token lifetime must be between 1 second and 30 days".into(),
        ));
    }
    if uses == 0 {
        return Err(Error::InvalidArgument(
            "a token needs at least one use".into(),
        ));
    }
    if let Some(role) = &role {
        state
            .compiler
            .role(role)
            .map_err(|e| Error::InvalidArgument(rigger_common::error_chain(&e)))?;
    }
    let token = tokens::generate();
    let expires_at_ms = now_ms() + ttl.as_millis() as i64;
    let record = TokenRecord {
        role: role.clone(),
        expires_at_ms,
        uses_left: i64::from(uses),
        revoked_at_ms: None,
    };
    state
        .store
        .insert_token(&tokens::hash(&token), &record, now_ms())
        .await?;
    if role.is_none() {
        tracing::warn!(
            uses,
            ttl_secs = ttl.as_secs(),
            "unbound bootstrap token created: its nodes choose their role"
        );
    } else {
        tracing::info!(role = ?role, uses, ttl_secs = ttl.as_secs(), "bootstrap token created");
    }
    Ok(NewToken {
        id: tokens::id(&tokens::hash(&token)),
        token,
        expires_at_ms,
    })
}

/// What a node presents to enroll.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proof<'a> {
    /// A bootstrap token (wins over the EC2 identity when both are given).
    pub token: &'a str,
    /// The instance's signed identity document (IMDS's `rsa2048`).
    pub ec2_identity: &'a str,
    /// The role the node asks for (checked against the EC2 policy).
    pub role: Option<&'a str>,
}

/// Signs `csr_pem` for the node it names, in exchange for one use of a
/// bootstrap token or, for an EC2 instance, its signed identity document
/// ([`crate::ec2`]). `remote`, the peer address, has a budget of attempts
/// ([`crate::throttle`]) and is logged.
pub async fn enroll(
    state: &MasterState,
    csr_pem: &str,
    proof: Proof<'_>,
    remote: Option<SocketAddr>,
) -> Result<Enrolled> {
    let throttle = &state.enroll_throttle;
    let remote_ip = remote.map(|r| r.ip());
    if let Some(ip) = remote_ip {
        if let Err(over) = throttle.attempt(ip) {
            throttle.log_refusal(remote_ip, "too many attempts from this address");
            return Err(Error::ResourceExhausted(format!(
                "too many enrollment attempts from {ip}: try again in {} s",
                over.retry_after.as_secs().max(1)
            )));
        }
    }
    let remote = remote.map(|r| r.to_string()).unwrap_or_default();
    let now = now_ms();
    let certname = crate::ca::csr_common_name(csr_pem)
        .map_err(|e| Error::InvalidArgument(format!("invalid CSR: {e}")))?;
    validate_certname(&certname)?;
    // A node whose enrollment reply was lost (or whose enrollment an
    // operator approved since) asks again with the key it kept: it gets
    // the issued certificate (public anyway), using no token.
    if let Some(existing) = state.store.valid_cert(&certname, now).await? {
        if crate::ca::csr_has_key_of(csr_pem, &existing.cert_pem)
            .map_err(|e| Error::InvalidArgument(format!("invalid CSR: {e}")))?
        {
            tracing::info!(node = %certname, serial = %existing.serial, %remote, "enrollment repeated with the enrolled key: the issued certificate is sent again");
            return Ok(enrolled(state, existing.cert_pem));
        }
    }
    let role = if !proof.token.is_empty() {
        token_role(state, proof.token, remote_ip, now).await?
    } else if !proof.ec2_identity.is_empty() {
        let instance = ec2_admitted(state, &certname, csr_pem, proof, &remote, now).await?;
        Some(instance)
    } else {
        throttle.log_refusal(remote_ip, "no token and no identity document");
        return Err(Error::Unauthenticated(
            "no bootstrap token and no EC2 identity document: pass --token (create one with `masterctl token create`) or enroll from an EC2 instance the site's enrollment.toml admits".into(),
        ));
    };
    if let Some(live) = state.store.valid_cert(&certname, now).await? {
        return Err(Error::AlreadyExists(format!(
            "node {certname} already holds a valid certificate for another key (serial {}): a replayed identity, or an identity baked into an image? Revoke it first (`masterctl cert revoke {certname}`) if the node was rebuilt",
            live.serial
        )));
    }
    if !proof.token.is_empty()
        && !state
            .store
            .consume_token(&tokens::hash(proof.token), now)
            .await?
    {
        return Err(token_used_up());
    }
    issue(state, &certname, csr_pem, role.as_deref(), &remote, now).await
}

/// Signs and records a node's first certificate, bound to `role`.
async fn issue(
    state: &MasterState,
    certname: &str,
    csr_pem: &str,
    role: Option<&str>,
    remote: &str,
    now: i64,
) -> Result<Enrolled> {
    let issued = state
        .ca
        .sign_node_csr(csr_pem, certname)
        .map_err(|e| Error::InvalidArgument(rigger_common::error_chain(&e)))?;
    let cert = CertRecord::issued(certname, &issued, now);
    state.store.record_enrollment(&cert, role).await?;
    tracing::info!(node = %certname, serial = %issued.serial, role = ?role, %remote, "node enrolled");
    Ok(enrolled(state, issued.pem))
}

fn token_used_up() -> Error {
    Error::Unauthenticated(
        "bootstrap token has been used up: create a new one with `masterctl token create`".into(),
    )
}

/// The role a valid, unexpired, unrevoked token binds (its use is taken
/// once the rest of the enrollment has been checked).
async fn token_role(
    state: &MasterState,
    token: &str,
    remote_ip: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Option<String>> {
    let throttle = &state.enroll_throttle;
    let record = state
        .store
        .token(&tokens::hash(token))
        .await?
        .ok_or_else(|| {
            throttle.log_refusal(remote_ip, "unknown token");
            Error::Unauthenticated("bootstrap token is not valid".into())
        })?;
    if let Some(at) = record.revoked_at_ms {
        throttle.log_refusal(remote_ip, "revoked token");
        return Err(Error::Unauthenticated(format!(
            "bootstrap token was revoked at {}: create a new one with `masterctl token create`",
            format_ms(at)
        )));
    }
    if record.expires_at_ms <= now {
        throttle.log_refusal(remote_ip, "expired token");
        return Err(Error::Unauthenticated(format!(
            "bootstrap token expired at {}",
            format_ms(record.expires_at_ms)
        )));
    }
    if record.uses_left <= 0 {
        throttle.log_refusal(remote_ip, "used-up token");
        return Err(token_used_up());
    }
    Ok(record.role)
}

/// Checks an EC2 instance's identity document and the site's policy for
/// it: the role it is enrolled with, or why not (an enrollment no rule
/// accepted waits for an operator).
async fn ec2_admitted(
    state: &MasterState,
    certname: &str,
    csr_pem: &str,
    proof: Proof<'_>,
    remote: &str,
    now: i64,
) -> Result<String> {
    use crate::ec2::{InstanceIdentity, policy, signature};
    let refuse = |why: String| {
        state.enroll_throttle.log_refusal(
            remote.split(':').next().and_then(|ip| ip.parse().ok()),
            "EC2 identity refused",
        );
        tracing::warn!(node = %certname, %remote, why = %why, "EC2 enrollment refused");
        Error::PermissionDenied(why)
    };
    let settings = state.settings().ec2;
    let Some(dir) = settings.aws_certificates else {
        return Err(Error::FailedPrecondition(
            "EC2 identity enrollment is off on this master (no aws_certificates configured): enroll with a bootstrap token".into(),
        ));
    };
    let certificates = crate::ec2::aws_certificates(&dir).map_err(Error::Internal)?;
    // The document is read once, before its signature is checked against
    // its own region's certificate; it is used only once that held.
    let mut read = None;
    let signed = signature::verify(proof.ec2_identity, |document| {
        let instance =
            InstanceIdentity::parse(document).map_err(signature::SignatureError::Malformed)?;
        read = Some(instance.clone());
        let certs = certificates.get(&instance.region).cloned().ok_or_else(|| {
            signature::SignatureError::UnknownSigner(format!(
                "region {} (no {}.pem in {})",
                instance.region,
                instance.region,
                dir.display()
            ))
        })?;
        Ok((instance.region, certs))
    })
    .map_err(|e| refuse(format!("identity document refused: {e}")))?;
    let instance = read.ok_or_else(|| {
        Error::Internal("an identity document verified without being read".into())
    })?;
    if certname != instance.certname() {
        return Err(refuse(format!(
            "an EC2 instance enrolls under its instance id {}, not {certname:?}",
            instance.certname()
        )));
    }
    if let Some(at) = signed.signed_at_ms {
        let max = settings.max_document_age.as_millis() as i64;
        if now - at > max {
            return Err(refuse(format!(
                "the identity document was signed at {}, longer ago than ec2_max_document_age ({}): stale or replayed",
                format_ms(at),
                humantime::format_duration(settings.max_document_age)
            )));
        }
        if at - now > 5 * 60 * 1000 {
            return Err(refuse(format!(
                "the identity document says it was signed at {}, in the future",
                format_ms(at)
            )));
        }
    }
    let policy = policy::Policy::load(state.compiler.site())
        .map_err(|e| Error::FailedPrecondition(format!("the site's enrollment policy: {e}")))?;
    let role = match policy.decide(&instance, proof.role) {
        policy::Decision::Enroll(role) => role,
        policy::Decision::Refused(why) => return Err(refuse(why)),
        policy::Decision::Pending(why) => {
            let document = String::from_utf8_lossy(&signed.document).into_owned();
            state
                .store
                .put_pending(&crate::store::PendingEnrollment {
                    certname: certname.to_string(),
                    csr_pem: csr_pem.to_string(),
                    asked_role: proof.role.map(str::to_string),
                    document,
                    why: why.clone(),
                    remote: remote.to_string(),
                    received_at_ms: now,
                })
                .await?;
            tracing::warn!(node = %certname, account = %instance.account_id, image = %instance.image_id, %remote, why = %why, "EC2 enrollment waits for an operator: `masterctl cert pending`");
            return Err(Error::FailedPrecondition(format!(
                "enrollment of {certname} waits for an operator ({why}): on the master, `masterctl cert sign {certname} --role ROLE`; this node asks again on its next run"
            )));
        }
    };
    // A first enrollment comes soon after the launch: an old document
    // cannot enroll an instance the master never knew.
    if state.store.issued_count(certname).await? == 0 {
        let launched = instance.launched_at_ms().map_err(&refuse)?;
        let max = settings.max_launch_age.as_millis() as i64;
        if now - launched > max {
            return Err(refuse(format!(
                "instance {certname} was launched at {}, longer ago than ec2_max_launch_age ({}): a first enrollment comes soon after the launch (enroll it with a token, or raise the window)",
                format_ms(launched),
                humantime::format_duration(settings.max_launch_age)
            )));
        }
    }
    tracing::info!(node = %certname, account = %instance.account_id, region = %instance.region, image = %instance.image_id, role = %role, "EC2 identity accepted");
    Ok(role)
}

/// Signs an enrollment that waited for an operator, with `role` (else the
/// role it asked for). Its node gets the certificate when it next asks.
pub async fn sign_pending(
    state: &MasterState,
    certname: &str,
    role: Option<&str>,
) -> Result<String> {
    let pending = state.store.take_pending(certname).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no enrollment of {certname:?} waits (`masterctl cert pending`)"
        ))
    })?;
    let put_back = |e: Error| async {
        let _ = state.store.put_pending(&pending).await;
        e
    };
    let Some(role) = role
        .map(str::to_string)
        .or_else(|| pending.asked_role.clone())
    else {
        return Err(put_back(Error::InvalidArgument(format!(
            "{certname} asked for no role: say which with --role"
        )))
        .await);
    };
    if let Err(e) = state.compiler.role(&role) {
        return Err(put_back(Error::InvalidArgument(rigger_common::error_chain(&e))).await);
    }
    let now = now_ms();
    if let Some(live) = state.store.valid_cert(certname, now).await? {
        return Err(put_back(Error::AlreadyExists(format!(
            "{certname} already holds a valid certificate (serial {})",
            live.serial
        )))
        .await);
    }
    issue(
        state,
        certname,
        &pending.csr_pem,
        Some(&role),
        "operator",
        now,
    )
    .await?;
    tracing::warn!(node = %certname, role = %role, "pending enrollment signed by an operator");
    Ok(role)
}

/// Signs a new certificate for the node holding `current` (its verified,
/// unrevoked client certificate) for the new key in `csr_pem`, which must
/// name that node: a node renews only its own certificate, with a new
/// key, once `current` is half way through its life (so that a node
/// cannot mint certificates at will). The old certificate stays valid
/// until it expires: the node keeps using it until the new one is
/// stored.
pub async fn renew(state: &MasterState, current: &CertRecord, csr_pem: &str) -> Result<Enrolled> {
    let certname = &current.certname;
    let asked = crate::ca::csr_common_name(csr_pem)
        .map_err(|e| Error::InvalidArgument(format!("invalid CSR: {e}")))?;
    if &asked != certname {
        tracing::warn!(node = %certname, asked = %asked, "refused: a node asked to renew another node's certificate");
        return Err(Error::PermissionDenied(format!(
            "node {certname} may renew only its own certificate, not {asked:?}"
        )));
    }
    if crate::ca::csr_has_key_of(csr_pem, &current.cert_pem)
        .map_err(|e| Error::InvalidArgument(format!("invalid CSR: {e}")))?
    {
        return Err(Error::InvalidArgument(
            "a renewal needs a new key: the CSR carries the key of the current certificate".into(),
        ));
    }
    let now = now_ms();
    let opens_at = current.issued_at_ms + (current.not_after_ms - current.issued_at_ms) / 2;
    if now < opens_at {
        return Err(Error::FailedPrecondition(format!(
            "certificate {} of {certname} is not half way through its life: renewal opens at {}",
            current.serial,
            format_ms(opens_at)
        )));
    }
    let issued = state
        .ca
        .sign_node_csr(csr_pem, certname)
        .map_err(|e| Error::InvalidArgument(rigger_common::error_chain(&e)))?;
    let cert = CertRecord::issued(certname, &issued, now);
    if !state.store.record_renewal(&cert, &current.serial).await? {
        return Err(Error::PermissionDenied(format!(
            "certificate {} of {certname} was revoked or its node removed: no renewal",
            current.serial
        )));
    }
    tracing::info!(node = %certname, old = %current.serial, serial = %issued.serial, expires = %format_ms(issued.not_after_ms), "certificate renewed");
    Ok(enrolled(state, issued.pem))
}

fn enrolled(state: &MasterState, cert_pem: String) -> Enrolled {
    Enrolled {
        cert_pem,
        ca_cert_pem: state.ca.trusted_pem(),
        catalog_signing_key: state.signing_key.verifying_key().to_bytes().to_vec(),
    }
}

/// Removes a node: it leaves the inventory, its certificates are revoked
/// and its restart leases freed.
pub async fn remove_node(state: &MasterState, certname: &str) -> Result<()> {
    if !state.store.remove_node(certname, now_ms()).await? {
        return Err(Error::NotFound(format!(
            "node {certname} is not in the inventory"
        )));
    }
    crate::revocation::publish(state).await?;
    tracing::info!(node = %certname, "node removed and its certificate revoked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certnames_are_checked() {
        for good in ["node1", "ip-10-0-1-5.ec2.internal", "i-0abc_1"] {
            validate_certname(good).unwrap();
        }
        for bad in ["", "Node1", "-a", ".a", "a/b", "a b", &"a".repeat(254)] {
            assert!(validate_certname(bad).is_err(), "{bad:?}");
        }
    }
}
