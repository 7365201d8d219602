//! The site's EC2 enrollment policy, `enrollment.toml` in the site
//! directory: which accounts' instances may enroll by their identity
//! document, and the role each gets. Rules are tried in order; the first
//! whose every condition holds decides.
//!
//! ```toml
//! [[ec2]]
//! account = "123456789012"
//! regions = ["us-east-1"]          # optional
//! images = ["ami-0abc"]            # optional: the AMI it was launched from
//! subnets = ["10.0.1.0/24"]        # optional: its private IP is in one
//! instance_types = ["m5.xlarge"]   # optional
//! role = "is"                      # the role it is bound to, or:
//! # roles = ["is", "apim"]         # the agent asks for one (--role)
//! ```
//!
//! An instance of an account no rule names, or of a region its account's
//! rules exclude, is refused. One of a named account that no rule matches
//! waits for an operator (`masterctl cert pending` / `cert sign`).

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::InstanceIdentity;

/// The policy file, in the site directory.
pub const POLICY_FILE: &str = "enrollment.toml";

/// The policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The rules for EC2 instances, in order.
    #[serde(default)]
    pub ec2: Vec<Rule>,
}

/// One rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The AWS account (12 digits).
    pub account: String,
    /// Regions (any when empty).
    #[serde(default)]
    pub regions: Vec<String>,
    /// AMI ids (any when empty).
    #[serde(default)]
    pub images: Vec<String>,
    /// IPv4/IPv6 networks the private IP must be in (any when empty).
    #[serde(default)]
    pub subnets: Vec<ipnet::IpNet>,
    /// Instance types (any when empty).
    #[serde(default)]
    pub instance_types: Vec<String>,
    /// The role a matching instance is bound to.
    #[serde(default)]
    pub role: Option<String>,
    /// Or the roles it may ask for.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What the policy says of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Enroll it with this role bound.
    Enroll(String),
    /// Its account may enroll, but no rule matched: an operator decides.
    Pending(String),
    /// Refused, and why.
    Refused(String),
}

impl Policy {
    /// Reads `enrollment.toml` in `site` (none there: no rule).
    pub fn load(site: &Path) -> Result<Self, String> {
        let path = site.join(POLICY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let policy: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, rule) in policy.ec2.iter().enumerate() {
            let ok = rule.account.len() == 12 && rule.account.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(format!(
                    "{}: [[ec2]] rule {}: account {:?} is not a 12-digit AWS account id",
                    path.display(),
                    i + 1,
                    rule.account
                ));
            }
            if rule.role.is_some() != rule.roles.is_empty() {
                return Err(format!(
                    "{}: [[ec2]] rule {}: give either role = \"…\" or roles = [\"…\"]",
                    path.display(),
                    i + 1
                ));
            }
        }
        Ok(policy)
    }

    /// Decides for `instance`, which asked for role `asked` (if any).
    pub fn decide(&self, instance: &InstanceIdentity, asked: Option<&str>) -> Decision {
        let account: Vec<&Rule> = self
            .ec2
            .iter()
            .filter(|r| r.account == instance.account_id)
            .collect();
        if account.is_empty() {
            return Decision::Refused(format!(
                "account {} may not enroll instances: no [[ec2]] rule in the site's {POLICY_FILE} names it",
                instance.account_id
            ));
        }
        let in_region: Vec<&&Rule> = account
            .iter()
            .filter(|r| r.regions.is_empty() || r.regions.contains(&instance.region))
            .collect();
        if in_region.is_empty() {
            return Decision::Refused(format!(
                "account {} may not enroll instances in region {}",
                instance.account_id, instance.region
            ));
        }
        let ip: Option<IpAddr> = instance
            .private_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok());
        let matching = in_region.into_iter().find(|r| {
            (r.images.is_empty() || r.images.contains(&instance.image_id))
                && (r.instance_types.is_empty()
                    || r.instance_types.contains(&instance.instance_type))
                && (r.subnets.is_empty()
                    || ip.is_some_and(|ip| r.subnets.iter().any(|net| net.contains(&ip))))
        });
        let Some(rule) = matching else {
            return Decision::Pending(format!(
                "no [[ec2]] rule matches image {}, type {}, address {}",
                instance.image_id,
                instance.instance_type,
                instance.private_ip.as_deref().unwrap_or("?")
            ));
        };
        match (&rule.role, asked) {
            (Some(role), None) => Decision::Enroll(role.clone()),
            (Some(role), Some(asked)) if asked == role => Decision::Enroll(role.clone()),
            (Some(role), Some(asked)) => Decision::Refused(format!(
                "the policy binds this instance to role {role:?}; it may not ask for {asked:?}"
            )),
            (None, Some(asked)) if rule.roles.iter().any(|r| r == asked) => {
                Decision::Enroll(asked.to_string())
            }
            (None, asked) => Decision::Refused(format!(
                "the policy lets this instance ask for one of {:?} (--role); it asked for {}",
                rule.roles,
                asked.map_or("none".to_string(), |a| format!("{a:?}"))
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(account: &str, region: &str, image: &str, ip: &str) -> InstanceIdentity {
        InstanceIdentity {
            account_id: account.into(),
            region: region.into(),
            instance_id: "i-0abc".into(),
            image_id: image.into(),
            instance_type: "m5.large".into(),
            private_ip: Some(ip.into()),
            pending_time: "2026-12-06T10:00:00Z".into(),
        }
    }

    fn policy(text: &str) -> Result<Policy, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(POLICY_FILE), text).unwrap();
        Policy::load(dir.path())
    }

    #[test]
    fn the_first_matching_rule_decides_and_unknown_accounts_are_refused() {
        let p = policy(
            r#"
            [[ec2]]
            account = "111111111111"
            regions = ["us-east-1"]
            subnets = ["10.0.1.0/24"]
            role = "is"

            [[ec2]]
            account = "111111111111"
            images = ["ami-apim"]
            roles = ["apim", "apim-gw"]
            "#,
        )
        .unwrap();
        let decide = |i: &InstanceIdentity, asked| p.decide(i, asked);
        let is = instance("111111111111", "us-east-1", "ami-x", "10.0.1.7");
        assert_eq!(decide(&is, None), Decision::Enroll("is".into()));
        assert!(
            matches!(decide(&is, Some("apim")), Decision::Refused(why) if why.contains("binds this instance to role \"is\""))
        );
        let apim = instance("111111111111", "eu-west-1", "ami-apim", "10.9.0.1");
        assert_eq!(
            decide(&apim, Some("apim-gw")),
            Decision::Enroll("apim-gw".into())
        );
        assert!(
            matches!(decide(&apim, None), Decision::Refused(why) if why.contains("ask for one of"))
        );
        let stray = instance("111111111111", "us-east-1", "ami-x", "10.0.2.7");
        assert!(matches!(decide(&stray, None), Decision::Pending(_)));
        let foreign = instance("222222222222", "us-east-1", "ami-x", "10.0.1.7");
        assert!(
            matches!(decide(&foreign, None), Decision::Refused(why) if why.contains("account 222222222222"))
        );
    }

    #[test]
    fn a_region_no_rule_allows_is_refused_and_typos_are_named() {
        let p = policy(
            "[[ec2]]\naccount = \"111111111111\"\nregions = [\"us-east-1\"]\nrole = \"is\"\n",
        )
        .unwrap();
        let elsewhere = instance("111111111111", "ap-south-1", "ami-x", "10.0.1.7");
        assert!(
            matches!(p.decide(&elsewhere, None), Decision::Refused(why) if why.contains("region ap-south-1"))
        );
        let typo = policy("[[ec2]]\naccount = \"111111111111\"\nrolle = \"is\"\n").unwrap_err();
        assert!(typo.contains("rolle"), "{typo}");
        let short = policy("[[ec2]]\naccount = \"1234\"\nrole = \"is\"\n").unwrap_err();
        assert!(short.contains("not a 12-digit"), "{short}");
        let both = policy("[[ec2]]\naccount = \"111111111111\"\nrole = \"is\"\nroles = [\"a\"]\n")
            .unwrap_err();
        assert!(both.contains("either role"), "{both}");
        assert_eq!(
            Policy::load(Path::new("/nonexistent")).unwrap(),
            Policy::default()
        );
    }
}
