//! One CloudWatch metric query ([`MetricQuery`]), as a `[[sources.cloudwatch]]` table of
//! `grace.toml` can hold it, checked against CloudWatch's own rules before any call:
//!
//! ```toml
//! id = "cpu"                      # a lowercase letter, then letters, digits, `_`
//! namespace = "AWS/EC2"
//! metric_name = "CPUUtilization"
//! dimensions = { AutoScalingGroupName = "web" }
//! stat = "p95"                    # Average, Sum, Maximum, Minimum, SampleCount, or pNN[.NN]
//! period = "1m"                   # 1s, 5s, 10s, 30s, or a multiple of 60s
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

/// Longest id, namespace, metric or dimension name CloudWatch accepts.
const MAX_NAME_LEN: usize = 255;
/// Longest dimension value CloudWatch accepts.
const MAX_DIMENSION_VALUE_LEN: usize = 1024;
/// Most dimensions of one metric.
const MAX_DIMENSIONS: usize = 30;

/// The statistic a query asks of each period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// The mean of the period's values.
    Average,
    /// Their sum.
    Sum,
    /// The largest.
    Maximum,
    /// The smallest.
    Minimum,
    /// How many there are.
    SampleCount,
    /// A percentile, within `0..=100` (`p95`, `p99.9`).
    Percentile(f64),
}

impl fmt::Display for Stat {
    /// CloudWatch's spelling: `Average`, `p95`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stat::Average => f.write_str("Average"),
            Stat::Sum => f.write_str("Sum"),
            Stat::Maximum => f.write_str("Maximum"),
            Stat::Minimum => f.write_str("Minimum"),
            Stat::SampleCount => f.write_str("SampleCount"),
            Stat::Percentile(p) => write!(f, "p{p}"),
        }
    }
}

impl std::str::FromStr for Stat {
    type Err = String;

    /// CloudWatch's spelling; percentiles as `p` and at most two decimals (`p99.99`).
    fn from_str(text: &str) -> Result<Stat, String> {
        match text {
            "Average" => return Ok(Stat::Average),
            "Sum" => return Ok(Stat::Sum),
            "Maximum" => return Ok(Stat::Maximum),
            "Minimum" => return Ok(Stat::Minimum),
            "SampleCount" => return Ok(Stat::SampleCount),
            _ => {}
        }
        let refused = || {
            format!(
                "`{text}` is not Average, Sum, Maximum, Minimum, SampleCount or a percentile such as `p95`"
            )
        };
        let number = text.strip_prefix('p').ok_or_else(refused)?;
        let (whole, decimals) = number.split_once('.').unwrap_or((number, "0"));
        let digits = |s: &str, most: usize| {
            !s.is_empty() && s.len() <= most && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(whole, 3) || !digits(decimals, 2) {
            return Err(refused());
        }
        match number.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Stat::Percentile(p)),
            _ => Err(format!("percentile `{text}` is not within p0..=p100")),
        }
    }
}

impl Serialize for Stat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One metric, one statistic, one period: a `MetricStat` query of `GetMetricData`.
///
/// Deserializing checks it as [`MetricQuery::validate`] does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawMetricQuery")]
pub struct MetricQuery {
    /// Names the query and its result: a lowercase letter, then letters, digits and `_`.
    pub id: String,
    /// The metric's namespace (`AWS/EC2`).
    pub namespace: String,
    /// The metric's name (`CPUUtilization`).
    pub metric_name: String,
    /// The metric's dimensions, all of them: CloudWatch matches the exact set.
    pub dimensions: BTreeMap<String, String>,
    /// The statistic of each period.
    pub stat: Stat,
    /// The period: 1, 5, 10 or 30 seconds (high-resolution metrics), or a multiple of 60 s.
    #[serde(serialize_with = "serialize_duration")]
    pub period: Duration,
}

/// Why a metric query was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metric query `{id}`: `{field}` {message}")]
#[non_exhaustive]
pub struct InvalidQuery {
    /// The query's id, as given.
    pub id: String,
    /// The field at fault (`id`, `namespace`, `metric_name`, `dimensions`, `stat`, `period`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl MetricQuery {
    /// Checks the query against CloudWatch's rules, naming the first field at fault.
    pub fn validate(&self) -> Result<(), InvalidQuery> {
        let refuse = |field, message: String| {
            Err(InvalidQuery {
                id: self.id.clone(),
                field,
                message,
            })
        };
        let mut chars = self.id.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
            return refuse("id", "must start with a lowercase letter".to_owned());
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return refuse(
                "id",
                "may only hold letters, digits and underscores".to_owned(),
            );
        }
        if self.id.len() > MAX_NAME_LEN {
            return refuse("id", format!("is longer than {MAX_NAME_LEN} characters"));
        }
        for (field, value) in [
            ("namespace", &self.namespace),
            ("metric_name", &self.metric_name),
        ] {
            if value.trim().is_empty() {
                return refuse(field, "must not be empty".to_owned());
            }
            if value.len() > MAX_NAME_LEN {
                return refuse(field, format!("is longer than {MAX_NAME_LEN} characters"));
            }
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return refuse(
                "dimensions",
                format!("has more than {MAX_DIMENSIONS} entries"),
            );
        }
        for (name, value) in &self.dimensions {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return refuse(
                    "dimensions",
                    format!("name `{name}` must hold 1 to {MAX_NAME_LEN} characters"),
                );
            }
            if value.is_empty() || value.len() > MAX_DIMENSION_VALUE_LEN {
                return refuse(
                    "dimensions",
                    format!(
                        "value of `{name}` must hold 1 to {MAX_DIMENSION_VALUE_LEN} characters"
                    ),
                );
            }
        }
        if let Stat::Percentile(p) = self.stat
            && !(0.0..=100.0).contains(&p)
        {
            return refuse("stat", format!("percentile {p} is not within 0..=100"));
        }
        let seconds = self.period.as_secs();
        let legal = self.period.subsec_nanos() == 0
            && seconds > 0
            && i32::try_from(seconds).is_ok()
            && (matches!(seconds, 1 | 5 | 10 | 30) || seconds.is_multiple_of(60));
        if !legal {
            return refuse(
                "period",
                format!(
                    "`{}` is not 1s, 5s, 10s, 30s or a multiple of 60s",
                    humantime::format_duration(self.period)
                ),
            );
        }
        Ok(())
    }

    /// The period in whole seconds, as CloudWatch takes it (valid once validated).
    pub(crate) fn period_seconds(&self) -> i32 {
        i32::try_from(self.period.as_secs()).unwrap_or(i32::MAX)
    }
}

/// A metric query as written, before it is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetricQuery {
    id: String,
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    stat: Stat,
    #[serde(with = "humantime_serde")]
    period: Duration,
}

impl<'de> Deserialize<'de> for Stat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stat, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl TryFrom<RawMetricQuery> for MetricQuery {
    type Error = InvalidQuery;

    fn try_from(raw: RawMetricQuery) -> Result<MetricQuery, InvalidQuery> {
        let query = MetricQuery {
            id: raw.id,
            namespace: raw.namespace,
            metric_name: raw.metric_name,
            dimensions: raw.dimensions,
            stat: raw.stat,
            period: raw.period,
        };
        query.validate()?;
        Ok(query)
    }
}

fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cpu() -> MetricQuery {
        MetricQuery {
            id: "cpu".to_owned(),
            namespace: "AWS/EC2".to_owned(),
            metric_name: "CPUUtilization".to_owned(),
            dimensions: BTreeMap::from([("AutoScalingGroupName".to_owned(), "web".to_owned())]),
            stat: Stat::Average,
            period: Duration::from_secs(60),
        }
    }

    fn refused_field(q: MetricQuery) -> &'static str {
        q.validate().unwrap_err().field
    }

    #[test]
    fn a_config_table_gives_a_checked_query() {
        let q: MetricQuery = toml::from_str(
            "id = \"cpu\"\nnamespace = \"AWS/EC2\"\nmetric_name = \"CPUUtilization\"\n\
             dimensions = { AutoScalingGroupName = \"web\" }\nstat = \"Average\"\nperiod = \"1m\"",
        )
        .unwrap();
        assert_eq!(q, cpu());
    }

    #[test]
    fn a_config_table_with_a_bad_field_is_refused_naming_it() {
        let e = toml::from_str::<MetricQuery>(
            "id = \"cpu\"\nnamespace = \"AWS/EC2\"\nmetric_name = \"CPU\"\nstat = \"Average\"\nperiod = \"90s\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`period`") && e.contains("1m 30s"), "{e}");
        let e = toml::from_str::<MetricQuery>(
            "id = \"cpu\"\nnamespace = \"N\"\nmetric_name = \"M\"\nstat = \"Median\"\nperiod = \"1m\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`Median`"), "{e}");
        let e = toml::from_str::<MetricQuery>(
            "id = \"cpu\"\nnamespace = \"N\"\nmetric_name = \"M\"\nstat = \"Sum\"\nperiod = \"1m\"\nregion = \"x\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("region"), "{e}");
    }

    #[test]
    fn ids_start_lowercase_and_hold_letters_digits_underscores() {
        for good in ["cpu", "p95_latency", "aBC9"] {
            let q = MetricQuery {
                id: good.to_owned(),
                ..cpu()
            };
            q.validate().unwrap();
        }
        for bad in ["", "Cpu", "9cpu", "_cpu", "cpu-load", "cpu load", "cpü"] {
            let q = MetricQuery {
                id: bad.to_owned(),
                ..cpu()
            };
            assert_eq!(refused_field(q), "id", "{bad:?}");
        }
    }

    #[test]
    fn namespace_and_metric_name_must_not_be_empty() {
        assert_eq!(
            refused_field(MetricQuery {
                namespace: " ".to_owned(),
                ..cpu()
            }),
            "namespace"
        );
        assert_eq!(
            refused_field(MetricQuery {
                metric_name: String::new(),
                ..cpu()
            }),
            "metric_name"
        );
    }

    #[test]
    fn dimensions_need_names_and_values() {
        let q = MetricQuery {
            dimensions: BTreeMap::from([("AutoScalingGroupName".to_owned(), String::new())]),
            ..cpu()
        };
        let e = q.validate().unwrap_err();
        assert_eq!(e.field, "dimensions");
        assert!(e.to_string().contains("`AutoScalingGroupName`"), "{e}");
    }

    #[test]
    fn periods_are_high_resolution_seconds_or_whole_minutes() {
        for good in [1, 5, 10, 30, 60, 300, 3600] {
            MetricQuery {
                period: Duration::from_secs(good),
                ..cpu()
            }
            .validate()
            .unwrap();
        }
        for bad in [
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(45),
            Duration::from_secs(90),
            Duration::from_millis(60_500),
        ] {
            assert_eq!(
                refused_field(MetricQuery {
                    period: bad,
                    ..cpu()
                }),
                "period",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stats_use_cloudwatch_spelling_and_percentiles() {
        for (text, stat) in [
            ("Average", Stat::Average),
            ("Sum", Stat::Sum),
            ("Maximum", Stat::Maximum),
            ("Minimum", Stat::Minimum),
            ("SampleCount", Stat::SampleCount),
            ("p95", Stat::Percentile(95.0)),
            ("p99.9", Stat::Percentile(99.9)),
            ("p0", Stat::Percentile(0.0)),
            ("p100", Stat::Percentile(100.0)),
        ] {
            assert_eq!(text.parse::<Stat>().unwrap(), stat, "{text}");
            assert_eq!(stat.to_string(), text);
        }
        for bad in [
            "average", "p", "p101", "p-1", "p9.999", "pNaN", "p1e2", "tm99",
        ] {
            assert!(bad.parse::<Stat>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_query_serializes_as_it_is_written() {
        let text = toml::to_string(&MetricQuery {
            stat: Stat::Percentile(99.5),
            ..cpu()
        })
        .unwrap();
        assert!(text.contains("stat = \"p99.5\""), "{text}");
        assert!(text.contains("period = \"1m\""), "{text}");
        assert_eq!(
            toml::from_str::<MetricQuery>(&text).unwrap().stat,
            Stat::Percentile(99.5)
        );
    }
}
