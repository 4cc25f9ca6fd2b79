//! Two providers of one capability in one run, one of them real: AWS Auto Scaling (moto)
//! serves the `web-*` groups, the simulated fleet every other group. Each change lands where
//! the routes send it, and the ledger says where each call went.
//!
//! moto is installed by `just test`; without it the test is skipped, loudly, unless
//! `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{aws_settings, create_group, engine, sdk_config};

use grace_engine::trust::PassThrough;
use std::sync::Arc;

use grace_engine::{RunEnv, RunStatus, TriggerEvent};
use grace_executor::providers::{Route, Routes};
use grace_executor::{Executors, Providers, ScalingExecutor};
use grace_ledger::{Durability, Ledger};
use grace_sim::{Fleet, Simulation};
use grace_testkit::{build_guests, fixture};
use serde_json::json;

#[test]
fn aws_and_the_simulation_serve_one_run_each_group_reaching_its_own_provider() {
    let Some(moto) = grace_testkit::moto::Moto::start("providers_side_by_side") else {
        return;
    };
    build_guests();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let settings = aws_settings(moto.endpoint());
    let sdk = rt.block_on(sdk_config(&settings, "providers"));
    // A group only AWS has; api-asg exists in both worlds, at different capacities.
    rt.block_on(create_group(&sdk, "web-asg", 1, 6, 2));
    rt.block_on(create_group(&sdk, "api-asg", 1, 12, 7));
    let aws: Arc<dyn ScalingExecutor> = Arc::new(grace_aws::AutoScaling::new(&sdk, &settings));
    let sim = Simulation::new(&Fleet::default_fleet());
    let simulated = sim.executors().scaling.default_provider().unwrap();
    let sim_api_before = rt.block_on(simulated.describe_group("api-asg")).unwrap();

    let mut scaling: Providers<dyn ScalingExecutor> = Providers::none();
    scaling.insert(grace_sim::PROVIDER, simulated.executor().clone());
    scaling.insert("aws", aws.clone());
    scaling
        .set_routes(Routes {
            routes: vec![Route {
                pattern: "web-*".into(),
                provider: "aws".into(),
            }],
            default: Some(grace_sim::PROVIDER.into()),
        })
        .unwrap();
    let executors = Executors {
        scaling,
        ..sim.executors()
    };

    let dir = fixture("group-scaler");
    let text = std::fs::read_to_string(dir.join("playbook.toml"))
        .unwrap()
        .replace("groups = \"api-asg\"", "groups = \"web-asg,api-asg\"");
    let manifest = grace_engine::Manifest::parse(&text).unwrap();
    let bytes = std::fs::read(dir.join(&manifest.component)).unwrap();
    let guest = engine().guest(manifest, &bytes, "group-scaler").unwrap();
    let data = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(data.path().join("grace.redb"), Durability::None).unwrap());
    let event = TriggerEvent {
        event_type: "test.providers".into(),
        source: "parity".into(),
        actor: "tests".into(),
        resource: "web-asg".into(),
        payload: json!({}),
        timestamp: grace_engine::event::system_now_millis(),
    };
    let report = rt.block_on(async {
        let report = engine()
            .run_playbook(
                &guest,
                &event,
                &RunEnv::new(executors, ledger.clone(), Arc::new(PassThrough)),
            )
            .await;
        ledger.flush().await.unwrap();
        report
    });
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}\n{}",
        report.failure,
        report.guest_stderr
    );
    let details = &report.outcome.as_ref().unwrap().details;
    assert_eq!(details["call0"], "ok web-asg 3");
    assert_eq!(
        details["call1"],
        format!("ok api-asg {}", sim_api_before.desired_capacity + 1)
    );

    // web-asg changed in AWS; api-asg in the simulation, and not in AWS.
    let web = rt.block_on(aws.describe_group("web-asg")).unwrap();
    assert_eq!(web.desired_capacity, 3);
    let aws_api = rt.block_on(aws.describe_group("api-asg")).unwrap();
    assert_eq!(aws_api.desired_capacity, 7);
    let sim_api = rt.block_on(simulated.describe_group("api-asg")).unwrap();
    assert_eq!(
        sim_api.desired_capacity,
        sim_api_before.desired_capacity + 1
    );

    // Every record says where its call went.
    ledger.verify().unwrap();
    let entries = ledger.entries_for_run(&report.run_id).unwrap();
    for (group, provider) in [("web-asg", "aws"), ("api-asg", "sim")] {
        let providers: Vec<_> = entries
            .iter()
            .filter(|e| e.interface == "scaling" && e.args["group"] == group)
            .map(|e| e.result["provider"].clone())
            .collect();
        assert_eq!(providers.len(), 3, "{group}: {providers:?}");
        assert!(
            providers.iter().all(|p| p == provider),
            "{group}: {providers:?}"
        );
    }
}
