//! The specification of `grace.toml`: its defaults, its durations, its layers, and a
//! refusal naming the key for every table.

#![allow(clippy::unwrap_used)]

use super::*;

fn parse(text: &str) -> ServeConfig {
    ServeConfig::parse(text).unwrap()
}

#[test]
fn insecure_no_auth_is_refused_beyond_loopback() {
    let c = ServeConfig {
        insecure_no_auth: true,
        listen: "0.0.0.0:7070".parse().unwrap(),
        ..ServeConfig::default()
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("insecure_no_auth: "), "{e}");
    assert!(e.contains("0.0.0.0:7070") && e.contains("loopback"), "{e}");
    for loopback in ["127.0.0.1:7070", "[::1]:7070"] {
        let c = ServeConfig {
            insecure_no_auth: true,
            listen: loopback.parse().unwrap(),
            ..ServeConfig::default()
        };
        c.validate().unwrap();
    }
}

#[test]
fn a_non_loopback_listen_without_tls_is_refused_naming_the_ways_out() {
    for address in ["0.0.0.0:7070", "[::]:7070", "192.0.2.10:7070"] {
        let c = ServeConfig {
            listen: address.parse().unwrap(),
            ..ServeConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("listen: "), "{e}");
        assert!(
            e.contains(address) && e.contains("--tls-cert") && e.contains("--insecure-plaintext"),
            "{e}"
        );
    }
}

#[test]
fn a_non_loopback_listen_is_accepted_with_tls_or_insecure_plaintext() {
    let with_tls = ServeConfig {
        listen: "0.0.0.0:7070".parse().unwrap(),
        tls_cert: Some("tls.crt".into()),
        tls_key: Some("tls.key".into()),
        ..ServeConfig::default()
    };
    with_tls.validate().unwrap();
    let plaintext = ServeConfig {
        listen: "0.0.0.0:7070".parse().unwrap(),
        insecure_plaintext: true,
        ..ServeConfig::default()
    };
    plaintext.validate().unwrap();
    // Loopback needs neither.
    ServeConfig::default().validate().unwrap();
}

#[test]
fn insecure_plaintext_with_tls_is_refused() {
    let c = ServeConfig {
        insecure_plaintext: true,
        tls_cert: Some("tls.crt".into()),
        tls_key: Some("tls.key".into()),
        ..ServeConfig::default()
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("insecure_plaintext: "), "{e}");
}

#[test]
fn tls_cert_and_key_are_read_from_the_file_and_come_together() {
    let c = parse("tls_cert = \"a.crt\"\ntls_key = \"a.key\"\n");
    c.validate().unwrap();
    assert_eq!(
        c.tls(),
        Some(TlsFiles {
            cert: "a.crt".into(),
            key: "a.key".into()
        })
    );
    let e = parse("tls_cert = \"a.crt\"\n").validate().unwrap_err();
    assert!(e.to_string().starts_with("tls_key: missing"), "{e}");
    let e = parse("tls_key = \"a.key\"\n").validate().unwrap_err();
    assert!(e.to_string().starts_with("tls_cert: missing"), "{e}");
}

#[test]
fn trust_roots_are_read_and_a_bad_one_is_named() {
    let key = grace_ledger::generate_key("release-team").unwrap();
    let text = format!(
        "[[trust_roots]]\nname = \"release\"\npublic_key = \"{}\"\n",
        key.verifier()
    );
    let c = parse(&text);
    c.validate().unwrap();
    assert_eq!(c.trust_roots[0].name, "release");

    let bad = "[[trust_roots]]\nname = \"ops\"\npublic_key = \"ops+00000000+AAAA\"\n";
    let e = parse(bad).validate().unwrap_err().to_string();
    assert!(e.starts_with("trust_roots: trust_roots[0] (`ops`)"), "{e}");
}

#[test]
fn the_prometheus_url_is_read_and_checked() {
    let c = parse("prometheus = \"http://127.0.0.1:9090\"");
    assert_eq!(c.prometheus.as_deref(), Some("http://127.0.0.1:9090"));
    c.validate().unwrap();

    for bad in ["127.0.0.1:9090", "ftp://metrics", "not a url"] {
        let c = ServeConfig {
            prometheus: Some(bad.to_owned()),
            ..ServeConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.to_string().starts_with("prometheus: "), "{e}");
    }
}

#[test]
fn promql_sources_are_read_and_checked_naming_the_key() {
    let text = r#"
        prometheus = "http://127.0.0.1:9090"
        [[sources.promql]]
        name = "api-latency"
        query = 'histogram_quantile(0.95, sum(rate(x_bucket[1m])) by (le))'
        event_type = "metrics.latency"
        every = "15s"
    "#;
    let c = parse(text);
    c.validate().unwrap();
    assert_eq!(c.sources.promql[0].name, "api-latency");

    let twice = format!(
        "{text}
[[sources.promql]]
name = \"api-latency\"
query = 'up'
event_type = \"metrics.up\"
"
    );
    let e = parse(&twice).validate().unwrap_err();
    assert!(e.to_string().contains("sources.promql[1].name"), "{e}");

    let no_url = text.replace("prometheus = \"http://127.0.0.1:9090\"", "");
    let e = parse(&no_url).validate().unwrap_err();
    assert!(e.to_string().contains("sources.promql[0].url"), "{e}");
}

/// A `grace.toml` setting every duration of every section to `d`. A CloudWatch period is
/// 1s, 5s, 10s, 30s or whole minutes (CloudWatch's own rule): it gets `2m` when `d` is not
/// whole minutes.
fn every_duration(d: &str) -> String {
    let whole_minutes = humantime::parse_duration(d)
        .unwrap()
        .as_secs()
        .is_multiple_of(60);
    let period = if whole_minutes { d } else { "2m" };
    format!(
        r#"
header_read_timeout = "{d}"
body_read_timeout = "{d}"
event_retention = "{d}"
retry_backoff = "{d}"
checkpoint_every = "{d}"
[limits]
timeout = "{d}"
[trust]
approval_ttl = "{d}"
[auth.oidc]
issuer = "https://idp.example.com"
audience = "grace"
clock_skew = "{d}"
jwks_refresh = "{d}"
[aws]
call_timeout = "{d}"
wait_delay = "{d}"
[docker]
call_timeout = "{d}"
stop_timeout = "{d}"
[kubernetes]
call_timeout = "{d}"
poll_interval = "{d}"
[[sources.promql]]
name = "p"
query = "up"
event_type = "metrics.up"
every = "{d}"
timeout = "{d}"
max_age = "{d}"
[[sources.containers]]
name = "c"
selector = {{ app = "web" }}
every = "{d}"
timeout = "{d}"
[[sources.cloudwatch]]
name = "w"
event_type = "metrics.cpu"
metric = {{ id = "cpu", namespace = "AWS/EC2", metric_name = "CPUUtilization", stat = "Average", period = "{period}" }}
every = "{d}"
timeout = "{d}"
max_age = "{d}"
lookback = "{d}"
[cluster]
nats = ["nats://127.0.0.1:4222"]
lease_ttl = "{d}"
renew_every = "{d}"
request_timeout = "{d}"
"#
    )
}

/// Where [`durations_of`] puts the CloudWatch metric's period.
const CLOUDWATCH_PERIOD: usize = 20;

/// Every duration the model holds, as read.
fn durations_of(c: &ServeConfig) -> Vec<Option<Duration>> {
    let oidc = c.auth.oidc.as_ref().unwrap();
    let (aws, docker, kube) = (
        c.aws.as_ref().unwrap(),
        c.docker.as_ref().unwrap(),
        c.kubernetes.as_ref().unwrap(),
    );
    let cluster = c.cluster.as_ref().unwrap();
    let (p, k, w) = (
        &c.sources.promql[0],
        &c.sources.containers[0],
        &c.sources.cloudwatch[0],
    );
    vec![
        Some(c.header_read_timeout),
        Some(c.body_read_timeout),
        Some(c.event_retention),
        Some(c.retry_backoff),
        Some(c.checkpoint_every),
        Some(c.limits.caps.timeout),
        c.trust.approval_ttl,
        oidc.clock_skew,
        oidc.jwks_refresh,
        Some(aws.call_timeout),
        Some(aws.wait_delay),
        Some(docker.call_timeout),
        Some(docker.stop_timeout),
        Some(kube.call_timeout),
        Some(kube.poll_interval),
        p.every,
        p.timeout,
        p.max_age,
        k.every,
        k.timeout,
        Some(w.metric.period),
        w.every,
        w.timeout,
        w.max_age,
        w.lookback,
        Some(cluster.lease_ttl),
        Some(cluster.renew_every),
        Some(cluster.request_timeout),
    ]
}

#[test]
fn a_duration_is_read_as_90s_5m_or_1h_30m_everywhere_a_duration_is() {
    for (text, expected) in [
        ("90s", Duration::from_secs(90)),
        ("5m", Duration::from_secs(300)),
        ("1h 30m", Duration::from_secs(5400)),
    ] {
        let c = parse(&every_duration(text));
        let read = durations_of(&c);
        assert_eq!(read.len(), 28);
        for (i, d) in read.into_iter().enumerate() {
            if i == CLOUDWATCH_PERIOD && !expected.as_secs().is_multiple_of(60) {
                assert_eq!(d, Some(Duration::from_secs(120)));
                continue;
            }
            assert_eq!(d, Some(expected), "duration {i} written `{text}`");
        }
    }
}

#[test]
fn a_duration_that_is_not_one_is_refused_showing_its_key() {
    for key in ["event_retention", "checkpoint_every"] {
        let e = ServeConfig::parse(&format!("{key} = \"soon\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key) && e.contains("\"soon\""), "{e}");
    }
    let e = ServeConfig::parse("[limits]\ntimeout = 600")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("timeout") && e.contains("expected a duration"),
        "{e}"
    );
}

#[test]
fn an_unknown_key_is_refused_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grace.toml");
    for (text, key) in [
        ("max_conections = 10\n", "max_conections"),
        ("[limits]\nmax_log_byts = 1\n", "max_log_byts"),
        ("[trust]\napproval = \"1h\"\n", "approval"),
        ("[docker]\nsocket = \"/x\"\n", "socket"),
        (
            "[[sources.promql]]\nname = \"p\"\nquery = \"up\"\nevent_type = \"m\"\nevry = \"1m\"\n",
            "evry",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let e = ServeConfig::read(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
}

#[test]
fn the_flag_only_switches_are_not_file_keys() {
    for key in ["insecure_no_auth", "insecure_plaintext"] {
        let e = ServeConfig::parse(&format!("{key} = true"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
    }
}

#[test]
fn the_file_beats_the_defaults_and_keeps_them_for_keys_it_does_not_set() {
    let c = parse("queue_capacity = 5\n[limits]\nmax_log_bytes = 1024\n");
    assert_eq!(c.queue_capacity, 5);
    assert_eq!(c.limits.caps.max_log_bytes, 1024);
    let d = ServeConfig::default();
    assert_eq!(
        (c.max_concurrent_runs, c.listen, c.limits.run),
        (d.max_concurrent_runs, d.listen, d.limits.run)
    );
}

#[test]
fn an_override_beats_the_file_and_leaves_the_keys_it_does_not_give() {
    let mut c = parse(
        "queue_capacity = 5\nmax_connections = 7\nevent_retention = \"1d\"\nsimulate = true\ntls_cert = \"file.crt\"\ntls_key = \"file.key\"\n",
    );
    Overrides {
        queue_capacity: Some(9),
        event_retention: Some(Duration::from_secs(60)),
        tls_key: Some("flag.key".into()),
        ..Overrides::default()
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(c.queue_capacity, 9);
    assert_eq!(c.event_retention, Duration::from_secs(60));
    assert_eq!(c.max_connections, 7, "not overridden");
    assert!(c.simulate, "an absent switch does not turn the file's off");
    assert_eq!(
        c.tls(),
        Some(TlsFiles {
            cert: "file.crt".into(),
            key: "flag.key".into()
        }),
        "each half of the pair is overridden on its own"
    );
}

#[test]
fn the_complete_file_of_the_reference_is_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let section = doc.split("## A complete file").nth(1).unwrap();
    let toml = section.split("```toml\n").nth(1).unwrap();
    let toml = toml.split("```").next().unwrap();
    let c = parse(toml);
    c.validate().unwrap();
    assert_eq!(format!("{c:?}"), format!("{:?}", ServeConfig::default()));
    // The commented-out tables are accepted too.
    let uncommented: String = toml
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    parse(&uncommented);
}

#[test]
fn the_demos_grace_toml_is_accepted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../playbooks/trust/grace.toml");
    let c = ServeConfig::read(&path).unwrap();
    c.validate().unwrap();
    assert_eq!(c.trust.approval_ttl, Some(Duration::from_secs(3600)));
}

#[test]
fn each_sections_validation_names_its_field() {
    for (text, field) in [
        ("queue_capacity = 0", "queue_capacity: "),
        ("checkpoint_every = \"10ms\"", "checkpoint_every: "),
        (
            "[limits]\nmax_response_bytes = 1",
            "limits.max_response_bytes: ",
        ),
        (
            "[trust]\napproval_ttl = \"0s\"",
            "trust: trust.approval_ttl: ",
        ),
        (
            "[[trust.resource]]\nmatch = \" \"",
            "trust: trust.resource[0].match: ",
        ),
        (
            "[auth.oidc]\nissuer = \"ftp://idp\"\naudience = \"grace\"",
            "auth.oidc.issuer: ",
        ),
        ("[aws]\nregion = \"EU West\"", "aws: aws.region: "),
        ("[docker]\nhost = \"ssh://box\"", "docker: "),
        (
            "[kubernetes]\ncontext = \"\"",
            "kubernetes: kubernetes.context: ",
        ),
        (
            "[[sources.containers]]\nname = \"c\"\nselector = {}",
            "sources: sources.containers[0].selector: ",
        ),
        (
            "[aws]\nregion = \"eu-west-1\"\n[[sources.cloudwatch]]\nname = \"w\"\nevent_type = \"m.cpu\"\nlookback = \"1s\"\nmetric = { id = \"cpu\", namespace = \"AWS/EC2\", metric_name = \"CPUUtilization\", stat = \"Average\", period = \"1m\" }",
            "sources: sources.cloudwatch[0].lookback: ",
        ),
        ("tls_cert = \"a.crt\"", "tls_key: "),
    ] {
        let e = parse(text).validate().unwrap_err().to_string();
        assert!(e.starts_with(field), "{text}: {e}");
    }
}

#[test]
fn a_retry_backoff_beyond_an_hour_is_refused_naming_the_field() {
    let c = ServeConfig::parse("retry_backoff = \"100y\"").unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("retry_backoff: "), "{e}");
    assert!(e.contains("10ms..=1h"), "{e}");
}

#[test]
fn the_cluster_section_is_checked_naming_its_key_and_flags_need_it() {
    let c = parse("[cluster]\nnats = [\"nats://10.0.0.1:4222\"]\nshards = 16\n");
    c.validate().unwrap();
    let cluster = c.cluster.as_ref().unwrap();
    assert_eq!(
        (cluster.shards, cluster.lease_ttl),
        (16, Duration::from_secs(15))
    );
    let e = parse("[cluster]\nnats = [\"nats://10.0.0.1:4222\"]\nshards = 0\n")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cluster: cluster.shards:"), "{e}");
    let e = parse("[cluster]\nnats = [\"http://10.0.0.1\"]\n")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cluster: cluster.nats:"), "{e}");
    assert!(ServeConfig::parse("[cluster]\nnats = []\nlease = \"1s\"\n").is_err());

    let mut with = c.clone();
    Overrides {
        replica: Some("r2".to_owned()),
        cluster_token: Some("s3cret".to_owned()),
        ..Overrides::default()
    }
    .apply(&mut with)
    .unwrap();
    let cluster = with.cluster.as_ref().unwrap();
    assert_eq!(cluster.replica.as_deref(), Some("r2"));
    assert_eq!(cluster.token.as_deref(), Some("s3cret"));
    let e = Overrides {
        replica: Some("r2".to_owned()),
        ..Overrides::default()
    }
    .apply(&mut ServeConfig::default())
    .unwrap_err()
    .to_string();
    assert!(e.contains("[cluster]"), "{e}");
}

#[test]
fn clustered_approvals_must_expire_before_the_engine_forgets_them() {
    let base = "[cluster]\nnats = [\"nats://10.0.0.1:4222\"]\nevent_retention = \"2h\"\n";
    parse(&format!("{base}[trust]\napproval_ttl = \"1h\"\n"))
        .validate()
        .unwrap();
    for ttl in ["2h", "3h"] {
        let e = parse(&format!("{base}[trust]\napproval_ttl = \"{ttl}\"\n"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("trust.approval_ttl: "), "{e}");
        assert!(e.contains("cluster.event_retention (7200s)"), "{e}");
    }
    // The default time to live (an hour) against a retention of a minute.
    let e = parse("[cluster]\nnats = [\"nats://10.0.0.1:4222\"]\nevent_retention = \"1m\"\n")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("trust.approval_ttl: "), "{e}");
}
