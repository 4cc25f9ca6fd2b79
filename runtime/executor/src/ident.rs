//! Resource identifiers, validated by each target's own rules before anything else sees them.
//!
//! A grant is checked against the text a guest gave; the provider acts on what its client puts
//! into a request. The two are the same only when the text cannot change meaning on the way:
//! kube formats namespaces and names into URL paths as given (`cart#-canary` becomes
//! `…/deployments/cart`, `prod/deployments/cart?x=-staging` a different path and a query), and
//! bollard does the same with container references. So every identifier is checked here, by the
//! rules its target applies itself, first by the capability (before any grant check, as
//! `invalid-argument`) and again by the real provider (defence in depth). An identifier that
//! passes contains nothing a URL path, a query or a filter could read as structure.
//!
//! | identifier | rule |
//! | --- | --- |
//! | Kubernetes namespace | RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 |
//! | Kubernetes deployment name | RFC 1123 subdomain: such labels joined by `.`, at most 253 in all |
//! | Kubernetes label key | optional subdomain prefix and `/`, name `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?` at most 63 |
//! | Kubernetes label value | empty, or like a key's name, at most 63 |
//! | Auto Scaling group name | 1 to 255 characters, no control or invisible formatting characters, not an ARN |
//! | container reference | a name or (short) id: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 255 |
//! | Docker label key | `[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?`, at most 255 |
//! | Docker label value | at most 4096 bytes, no control or invisible formatting characters |
//!
//! Lengths are in bytes (every rule but the group name's and the label value's is ASCII).

use crate::ExecError;

/// Longest Kubernetes namespace (an RFC 1123 label).
pub const MAX_NAMESPACE_LEN: usize = 63;
/// Longest Kubernetes object name that is an RFC 1123 subdomain (deployments).
pub const MAX_DEPLOYMENT_NAME_LEN: usize = 253;
/// Longest name part of a Kubernetes label key, and longest label value.
pub const MAX_K8S_LABEL_NAME_LEN: usize = 63;
/// Longest Auto Scaling group name, in characters (AWS's `XmlStringMaxLen255`).
pub const MAX_GROUP_NAME_CHARS: usize = 255;
/// Longest container reference: a 64-digit id fits, and any name Docker or Podman generate.
pub const MAX_CONTAINER_REF_LEN: usize = 255;
/// Longest Docker label key.
pub const MAX_DOCKER_LABEL_KEY_LEN: usize = 255;
/// Longest Docker label value.
pub const MAX_DOCKER_LABEL_VALUE_LEN: usize = 4096;

/// How much of a refused value an error message quotes.
const QUOTED_CHARS: usize = 80;

/// Why an identifier was refused. Every variant names the argument it was given as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentError {
    /// Empty where the target requires a value.
    #[error("`{argument}` is empty: a {kind} must not be")]
    Empty {
        /// The argument, e.g. `namespace`.
        argument: &'static str,
        /// What it should be, e.g. `kubernetes namespace`.
        kind: &'static str,
    },
    /// Longer than the target allows.
    #[error("`{argument}` is {len} {unit} long, above the limit of {max} for a {kind}")]
    TooLong {
        /// The argument.
        argument: &'static str,
        /// What it should be.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
        /// `bytes` or `characters`.
        unit: &'static str,
    },
    /// Outside the target's alphabet or form.
    #[error("`{argument}` `{value}` is not a valid {kind}: {rule}")]
    Malformed {
        /// The argument.
        argument: &'static str,
        /// What it should be.
        kind: &'static str,
        /// The value as given, escaped and shortened for display.
        value: String,
        /// The rule it breaks, in words.
        rule: &'static str,
    },
}

impl From<IdentError> for ExecError {
    fn from(e: IdentError) -> Self {
        ExecError::InvalidArgument(e.to_string())
    }
}

/// `value` for an error message: control and invisible characters escaped, at most
/// [`QUOTED_CHARS`] characters, so that a refusal cannot itself carry what it refused.
fn quoted(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == QUOTED_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || is_invisible(c) || c == '`' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Unicode formatting characters that render as nothing or reorder text (zero-width spaces and
/// joiners, bidirectional controls, the byte-order mark, interlinear annotations) and the two
/// noncharacters XML, hence AWS's query API, refuses.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{FFFE}' | '\u{FFFF}')
}

struct Check {
    argument: &'static str,
    kind: &'static str,
}

impl Check {
    fn empty(&self) -> IdentError {
        IdentError::Empty {
            argument: self.argument,
            kind: self.kind,
        }
    }

    fn too_long(&self, len: usize, max: usize, unit: &'static str) -> IdentError {
        IdentError::TooLong {
            argument: self.argument,
            kind: self.kind,
            len,
            max,
            unit,
        }
    }

    fn malformed(&self, value: &str, rule: &'static str) -> IdentError {
        IdentError::Malformed {
            argument: self.argument,
            kind: self.kind,
            value: quoted(value),
            rule,
        }
    }

    /// Non-empty and at most `max` bytes.
    fn bytes(&self, value: &str, max: usize) -> Result<(), IdentError> {
        if value.is_empty() {
            return Err(self.empty());
        }
        if value.len() > max {
            return Err(self.too_long(value.len(), max, "bytes"));
        }
        Ok(())
    }
}

/// An RFC 1123 label: lowercase letters, digits and `-`, starting and ending with a letter or
/// a digit (length checked by the caller).
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-')
}

/// An RFC 1123 subdomain as Kubernetes checks it: RFC 1123 labels joined by `.`, with only the
/// whole length bounded (by the caller; the API server does not bound each label). `.` and
/// `..` are not subdomains: no label may be empty.
fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(is_dns_label)
}

/// A Kubernetes qualified name's name part (label keys, label values): alphanumerics, `-`, `_`
/// and `.`, starting and ending with an alphanumeric.
fn is_k8s_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || matches!(c, b'-' | b'_' | b'.'))
}

const DNS_LABEL_RULE: &str = "use lowercase letters, digits and `-`, starting and ending with a letter or digit (RFC 1123 label)";
const DNS_SUBDOMAIN_RULE: &str = "use lowercase letters, digits, `-` and `.`, each `.`-separated part starting and ending with a letter or digit (RFC 1123 subdomain)";

/// A Kubernetes namespace, given as `argument`: an RFC 1123 label of at most 63 bytes.
pub fn k8s_namespace<'a>(argument: &'static str, value: &'a str) -> Result<&'a str, IdentError> {
    let check = Check {
        argument,
        kind: "kubernetes namespace",
    };
    check.bytes(value, MAX_NAMESPACE_LEN)?;
    if !is_dns_label(value) {
        return Err(check.malformed(value, DNS_LABEL_RULE));
    }
    Ok(value)
}

/// A Kubernetes deployment name, given as `argument`: an RFC 1123 subdomain of at most 253
/// bytes (the rule the API server applies to deployment names).
pub fn k8s_deployment_name<'a>(
    argument: &'static str,
    value: &'a str,
) -> Result<&'a str, IdentError> {
    let check = Check {
        argument,
        kind: "kubernetes deployment name",
    };
    check.bytes(value, MAX_DEPLOYMENT_NAME_LEN)?;
    if !is_dns_subdomain(value) {
        return Err(check.malformed(value, DNS_SUBDOMAIN_RULE));
    }
    Ok(value)
}

/// A Kubernetes label key, given as `argument`: `[prefix/]name`, the prefix an RFC 1123
/// subdomain of at most 253 bytes, the name at most 63 bytes of alphanumerics, `-`, `_` and `.`
/// starting and ending with an alphanumeric.
pub fn k8s_label_key<'a>(argument: &'static str, value: &'a str) -> Result<&'a str, IdentError> {
    let check = Check {
        argument,
        kind: "kubernetes label key",
    };
    check.bytes(value, MAX_DEPLOYMENT_NAME_LEN + 1 + MAX_K8S_LABEL_NAME_LEN)?;
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty()
            || prefix.len() > MAX_DEPLOYMENT_NAME_LEN
            || !is_dns_subdomain(prefix))
    {
        return Err(check.malformed(
            value,
            "the prefix before `/` must be an RFC 1123 subdomain of at most 253 bytes",
        ));
    }
    if name.is_empty() || name.len() > MAX_K8S_LABEL_NAME_LEN || !is_k8s_label_name(name) {
        return Err(check.malformed(
            value,
            "the name must be 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
        ));
    }
    Ok(value)
}

/// A Kubernetes label value, given as `argument`: empty, or at most 63 bytes of alphanumerics,
/// `-`, `_` and `.` starting and ending with an alphanumeric.
pub fn k8s_label_value<'a>(argument: &'static str, value: &'a str) -> Result<&'a str, IdentError> {
    let check = Check {
        argument,
        kind: "kubernetes label value",
    };
    if value.is_empty() {
        return Ok(value);
    }
    check.bytes(value, MAX_K8S_LABEL_NAME_LEN)?;
    if !is_k8s_label_name(value) {
        return Err(check.malformed(
            value,
            "use letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
        ));
    }
    Ok(value)
}

/// An Auto Scaling group name, given as `argument`: 1 to 255 characters (AWS's rule), none a
/// control character (AWS accepts tab, CR and LF; GRACE does not, since they forge log lines and
/// ledger views) or an invisible formatting character, and not an ARN (grants name groups, so an
/// ARN would be checked as one text and resolved by AWS as another).
pub fn aws_group_name<'a>(argument: &'static str, value: &'a str) -> Result<&'a str, IdentError> {
    let check = Check {
        argument,
        kind: "auto scaling group name",
    };
    if value.is_empty() {
        return Err(check.empty());
    }
    let chars = value.chars().count();
    if chars > MAX_GROUP_NAME_CHARS {
        return Err(check.too_long(chars, MAX_GROUP_NAME_CHARS, "characters"));
    }
    if value.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(check.malformed(
            value,
            "control and invisible formatting characters are not allowed",
        ));
    }
    if value.starts_with("arn:") {
        return Err(check.malformed(
            value,
            "give the group's name, not its ARN: grants name groups",
        ));
    }
    Ok(value)
}

/// A container reference (an id, a unique id prefix, or a name), given as `argument`: Docker's
/// name alphabet `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, which hex ids also fit, at most 255 bytes. No
/// leading `/`: the reference is exactly what goes into the engine's URL path.
pub fn container_ref<'a>(argument: &'static str, value: &'a str) -> Result<&'a str, IdentError> {
    let check = Check {
        argument,
        kind: "container id or name",
    };
    check.bytes(value, MAX_CONTAINER_REF_LEN)?;
    let b = value.as_bytes();
    let valid = b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !valid {
        return Err(check.malformed(
            value,
            "use letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        ));
    }
    Ok(value)
}

/// A Docker label key, given as `argument`: at most 255 bytes of letters, digits, `.`, `-`, `_`
/// and `/`, starting and ending with a letter or digit (Docker's recommended form, which
/// `com.docker.compose.project` and reverse-DNS keys fit). No `=`: filters send `key=value`.
pub fn docker_label_key<'a>(argument: &'static str, value: &'a str) -> Result<&'a str, IdentError> {
    let check = Check {
        argument,
        kind: "container label key",
    };
    check.bytes(value, MAX_DOCKER_LABEL_KEY_LEN)?;
    let b = value.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    let valid = b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter()
            .all(|c| edge(c) || matches!(c, b'.' | b'-' | b'_' | b'/'));
    if !valid {
        return Err(check.malformed(
            value,
            "use letters, digits, `.`, `-`, `_` and `/`, starting and ending with a letter or digit",
        ));
    }
    Ok(value)
}

/// A Docker label value, given as `argument`: at most 4096 bytes, possibly empty, with no
/// control or invisible formatting character.
pub fn docker_label_value<'a>(
    argument: &'static str,
    value: &'a str,
) -> Result<&'a str, IdentError> {
    let check = Check {
        argument,
        kind: "container label value",
    };
    if value.len() > MAX_DOCKER_LABEL_VALUE_LEN {
        return Err(check.too_long(value.len(), MAX_DOCKER_LABEL_VALUE_LEN, "bytes"));
    }
    if value.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(check.malformed(
            value,
            "control and invisible formatting characters are not allowed",
        ));
    }
    Ok(value)
}

/// A Docker label set (a selector), every key and value checked, as `argument`.
pub fn docker_labels<'a>(
    argument: &'static str,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), IdentError> {
    for (k, v) in labels {
        docker_label_key(argument, k)?;
        docker_label_value(argument, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the grant check must never see pass: each one reproduced against kube or bollard.
    const PATH_ATTACKS: &[&str] = &[
        "cart#-canary",
        "prod/deployments/cart?x=-staging",
        "checkout/../cart",
        "..",
        ".",
        "cart%23-canary",
        "cart%2F..%2Fx",
        "cart?-canary",
        "cart -canary",
        "cart\n-canary",
        "cart\u{0}-canary",
        "cаrt-canary", // Cyrillic а
        "cart\u{200B}-canary",
        "CART-canary",
        "-canary",
        "cart-",
        "",
    ];

    #[test]
    fn kubernetes_names_refuse_every_path_attack() {
        for attack in PATH_ATTACKS {
            assert!(k8s_namespace("namespace", attack).is_err(), "{attack:?}");
            assert!(k8s_deployment_name("name", attack).is_err(), "{attack:?}");
        }
    }

    #[test]
    fn kubernetes_names_accept_what_the_api_server_accepts() {
        for ok in ["shop", "kube-system", "a", "x1", &"a".repeat(63)] {
            assert_eq!(k8s_namespace("namespace", ok), Ok(ok));
        }
        for ok in [
            "checkout",
            "cart-canary",
            "api.v2",
            "a.b-c.d",
            &"a".repeat(253),
        ] {
            assert_eq!(k8s_deployment_name("name", ok), Ok(ok));
        }
    }

    #[test]
    fn kubernetes_lengths_are_bounded() {
        let e = k8s_namespace("namespace", &"a".repeat(64)).unwrap_err();
        assert!(matches!(
            e,
            IdentError::TooLong {
                len: 64,
                max: 63,
                ..
            }
        ));
        assert!(
            k8s_namespace("namespace", "a.b").is_err(),
            "a namespace has no dots"
        );
        assert!(k8s_deployment_name("name", &"a".repeat(254)).is_err());
        assert!(k8s_deployment_name("name", "a..b").is_err());
    }

    #[test]
    fn errors_name_the_argument_and_escape_the_value() {
        let e = k8s_deployment_name("name", "cart\u{1b}[2J#-canary").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("`name` `cart\\u{1b}[2J#-canary`"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
        let e = k8s_namespace("namespace", "").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`namespace` is empty: a kubernetes namespace must not be"
        );
        let long = "x#".repeat(1000);
        assert!(
            k8s_namespace("namespace", &long)
                .unwrap_err()
                .to_string()
                .len()
                < 200
        );
    }

    #[test]
    fn kubernetes_label_keys_and_values_follow_the_api_rules() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "example.com/tier_1",
            "A-b.C",
        ] {
            assert_eq!(k8s_label_key("key", ok), Ok(ok));
        }
        for bad in [
            "",
            "/app",
            "Example.com/app",
            "a/b/c",
            "-app",
            "app-",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(k8s_label_key("key", bad).is_err(), "{bad:?}");
        }
        for ok in ["", "web", "v1.2_3", &"a".repeat(63)] {
            assert_eq!(k8s_label_value("value", ok), Ok(ok));
        }
        for bad in ["-web", "web!", "a=b", "a,b", &"a".repeat(64)] {
            assert!(k8s_label_value("value", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn group_names_follow_aws_and_refuse_control_characters() {
        for ok in ["api-asg", "My Group (prod)", "grupo-ñ", &"é".repeat(255)] {
            assert_eq!(aws_group_name("name", ok), Ok(ok));
        }
        assert!(aws_group_name("name", "").is_err());
        assert!(matches!(
            aws_group_name("name", &"é".repeat(256)),
            Err(IdentError::TooLong {
                len: 256,
                max: 255,
                unit: "characters",
                ..
            })
        ));
        for bad in [
            "api\n-asg",
            "api\r-asg",
            "api\t-asg",
            "api\u{7f}",
            "api\u{202E}gsa",
            "a\u{FFFE}",
        ] {
            assert!(aws_group_name("name", bad).is_err(), "{bad:?}");
        }
        assert!(
            aws_group_name(
                "name",
                "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:x:autoScalingGroupName/api-asg"
            )
            .is_err()
        );
    }

    #[test]
    fn container_references_are_names_or_ids() {
        let id = "0123456789abcdef".repeat(4);
        for ok in ["web-1", "grace_web.2", "0123abcd", id.as_str()] {
            assert_eq!(container_ref("id", ok), Ok(ok));
        }
        for bad in [
            "",
            "/web-1",
            "-web",
            ".web",
            "web/../other",
            "web?x",
            "web#x",
            "web%2f",
            &"a".repeat(256),
        ] {
            assert!(container_ref("id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn docker_labels_refuse_what_would_change_a_filter() {
        for ok in [
            "app",
            "com.docker.compose.project",
            "org.example/tier",
            "a_b",
        ] {
            assert_eq!(docker_label_key("selector", ok), Ok(ok));
        }
        for bad in [
            "",
            "app=web",
            "app,env",
            "app ",
            ".app",
            "app\n",
            "ápp",
            &"a".repeat(256),
        ] {
            assert!(docker_label_key("selector", bad).is_err(), "{bad:?}");
        }
        for ok in ["", "web", "a=b,c", "prod eu"] {
            assert_eq!(docker_label_value("selector", ok), Ok(ok));
        }
        for bad in ["web\n", "web\u{0}", "w\u{200D}eb", &"a".repeat(4097)] {
            assert!(docker_label_value("selector", bad).is_err(), "{bad:?}");
        }
    }
}
