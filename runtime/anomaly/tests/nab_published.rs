//! The harness against NAB's own published numbers: NAB's windowed Gaussian, run here and
//! scored by this harness at the threshold NAB chose for it (1.0 in NAB's
//! `config/thresholds.json`), gives each file of the development corpus the score NAB
//! publishes for it in `results/windowedGaussian/windowedGaussian_<profile>_scores.csv`.
//!
//! Needs the corpus at `$GRACE_NAB_DATA` (default `../shared/data/nab` beside the checkout);
//! without it the test fails, naming the path.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use grace_anomaly::DetectorKind;
use grace_anomaly::nab::{Corpus, DetectorRun};

/// NAB's published per-file results for the categories of the development corpus (and only
/// those): file, standard, reward_low_FP_rate and reward_low_FN_rate scores, and the standard
/// profile's true and false positive rows.
const PUBLISHED: &[(&str, f64, f64, f64, usize, usize)] = &[
    (
        "artificialNoAnomaly/art_daily_no_noise.csv",
        0.0,
        0.0,
        0.0,
        0,
        0,
    ),
    (
        "artificialNoAnomaly/art_daily_perfect_square_wave.csv",
        0.0,
        0.0,
        0.0,
        0,
        0,
    ),
    (
        "artificialNoAnomaly/art_daily_small_noise.csv",
        0.0,
        0.0,
        0.0,
        0,
        0,
    ),
    ("artificialNoAnomaly/art_flatline.csv", 0.0, 0.0, 0.0, 0, 0),
    ("artificialNoAnomaly/art_noisy.csv", 0.0, 0.0, 0.0, 0, 0),
    (
        "artificialWithAnomaly/art_daily_flatmiddle.csv",
        -1.0,
        -1.0,
        -2.0,
        0,
        0,
    ),
    (
        "artificialWithAnomaly/art_daily_jumpsdown.csv",
        -1.0,
        -1.0,
        -2.0,
        0,
        0,
    ),
    (
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        -1.0,
        -1.0,
        -2.0,
        0,
        0,
    ),
    (
        "artificialWithAnomaly/art_daily_nojump.csv",
        -1.0,
        -1.0,
        -2.0,
        0,
        0,
    ),
    (
        "artificialWithAnomaly/art_increase_spike_density.csv",
        -1.0,
        -1.0,
        -2.0,
        0,
        0,
    ),
    (
        "artificialWithAnomaly/art_load_balancer_spikes.csv",
        -0.692444609523,
        -2.34244460952,
        -0.692444609523,
        18,
        15,
    ),
    (
        "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
        -1.26667875935,
        -2.39490832077,
        -2.26667875935,
        2,
        11,
    ),
    (
        "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv",
        -0.141423196117,
        -0.471217560129,
        -0.141423196117,
        2,
        3,
    ),
    (
        "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
        -2.0,
        -2.0,
        -4.0,
        0,
        0,
    ),
    (
        "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv",
        -1.0,
        -1.0,
        -2.0,
        0,
        0,
    ),
    (
        "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
        0.956537840284,
        0.956537840284,
        0.956537840284,
        36,
        0,
    ),
    (
        "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv",
        0.86067182427,
        0.86067182427,
        0.86067182427,
        25,
        0,
    ),
    (
        "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv",
        -1.32,
        -2.64,
        -1.32,
        0,
        12,
    ),
    (
        "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv",
        0.638757791772,
        0.528757791772,
        -0.361242208228,
        6,
        1,
    ),
    (
        "realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv",
        -4.19089678552,
        -9.31619217025,
        -4.19089678552,
        9,
        48,
    ),
    (
        "realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv",
        -1.09599853032,
        -3.0909727984,
        -2.09599853032,
        13,
        19,
    ),
    (
        "realAWSCloudwatch/ec2_network_in_257a54.csv",
        0.86067182427,
        0.86067182427,
        0.86067182427,
        4,
        0,
    ),
    (
        "realAWSCloudwatch/ec2_network_in_5abac7.csv",
        -3.52193223519,
        -8.9750563904,
        -3.52193223519,
        19,
        50,
    ),
    (
        "realAWSCloudwatch/elb_request_count_8c0756.csv",
        -0.138449197924,
        -0.138449197924,
        -1.13844919792,
        1,
        0,
    ),
    (
        "realAWSCloudwatch/grok_asg_anomaly.csv",
        2.37942230674,
        2.04942230674,
        2.37942230674,
        69,
        3,
    ),
    (
        "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
        -2.0,
        -2.0,
        -4.0,
        0,
        0,
    ),
    (
        "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv",
        -0.138449197924,
        -0.138449197924,
        -1.13844919792,
        50,
        0,
    ),
    (
        "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
        -0.138449197924,
        -0.138449197924,
        -1.13844919792,
        2,
        0,
    ),
    (
        "realAdExchange/exchange-2_cpc_results.csv",
        -1.0,
        -1.0,
        -2.0,
        0,
        0,
    ),
    (
        "realAdExchange/exchange-2_cpm_results.csv",
        -2.0,
        -2.0,
        -4.0,
        0,
        0,
    ),
    (
        "realAdExchange/exchange-3_cpc_results.csv",
        2.50266326119,
        2.39266475507,
        2.50266326119,
        5,
        1,
    ),
    (
        "realAdExchange/exchange-3_cpm_results.csv",
        0.862098587352,
        0.862098587352,
        0.862098587352,
        1,
        0,
    ),
    (
        "realAdExchange/exchange-4_cpc_results.csv",
        0.292288463428,
        -0.147680769569,
        -0.707711536572,
        3,
        4,
    ),
    (
        "realAdExchange/exchange-4_cpm_results.csv",
        1.27471036268,
        0.944710362685,
        0.274710362685,
        4,
        3,
    ),
    (
        "realTraffic/TravelTime_387.csv",
        -1.79598133079,
        -2.45598133079,
        -3.79598133079,
        1,
        6,
    ),
    ("realTraffic/TravelTime_451.csv", -1.0, -1.0, -2.0, 0, 0),
    ("realTraffic/occupancy_6005.csv", -1.0, -1.0, -2.0, 0, 0),
    (
        "realTraffic/occupancy_t4013.csv",
        1.72522152023,
        1.72522152023,
        1.72522152023,
        3,
        0,
    ),
    (
        "realTraffic/speed_6005.csv",
        0.832538201468,
        0.832538201468,
        0.832538201468,
        1,
        0,
    ),
    (
        "realTraffic/speed_7578.csv",
        3.47059145681,
        3.36059145681,
        3.47059145681,
        11,
        1,
    ),
    (
        "realTraffic/speed_t4013.csv",
        1.76631783122,
        1.76631783122,
        1.76631783122,
        14,
        0,
    ),
];

fn corpus() -> Corpus {
    let dir = std::env::var_os("GRACE_NAB_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab"),
        PathBuf::from,
    );
    Corpus::load(&dir).unwrap_or_else(|e| {
        panic!(
            "the NAB development corpus is needed at {} (set GRACE_NAB_DATA): {e}",
            dir.display()
        )
    })
}

#[test]
fn the_windowed_gaussian_scores_what_nab_publishes_file_by_file() {
    let corpus = corpus();
    let fixed: BTreeMap<String, f64> = corpus
        .profiles
        .iter()
        .map(|p| (p.name.clone(), 1.0))
        .collect();
    // NAB's detectors write their scores to CSV files with 12 significant digits (Python 2's
    // `str`), and NAB scores what it reads back: 0.99999999999991 becomes 1.0 and meets the
    // threshold of 1.0. The same rounding here.
    let mut run = DetectorRun::new(&corpus, DetectorKind::WindowedGaussian);
    for file in &mut run.scores {
        for s in file.iter_mut() {
            *s = format!("{s:.11e}").parse().unwrap();
        }
    }
    let report = run.report(&corpus, &fixed);
    let profile = |name: &str| report.profiles.iter().find(|p| p.profile == name).unwrap();
    let (standard, low_fp, low_fn) = (
        profile("standard"),
        profile("reward_low_FP_rate"),
        profile("reward_low_FN_rate"),
    );
    assert_eq!(standard.files.len(), PUBLISHED.len());
    let mut worst: f64 = 0.0;
    for (i, (file, s, fp_score, fn_score, tp_rows, fp_rows)) in PUBLISHED.iter().enumerate() {
        assert_eq!(standard.files[i].file, *file);
        for (ours, theirs) in [
            (standard.files[i].raw, s),
            (low_fp.files[i].raw, fp_score),
            (low_fn.files[i].raw, fn_score),
        ] {
            worst = worst.max((ours - theirs).abs());
            assert!(
                (ours - theirs).abs() < 1e-6,
                "{file}: scored {ours}, NAB publishes {theirs}"
            );
        }
        assert_eq!(
            (standard.files[i].tp, standard.files[i].fp),
            (*tp_rows, *fp_rows),
            "{file}: true and false positive rows"
        );
    }
    eprintln!("largest difference from NAB's published file scores: {worst:e}");
}
