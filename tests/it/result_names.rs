//! Intune's action results under whatever name it writes them: the endpoint's name, Pascal case, a
//! name holding the keyword, or a derived `@odata.type` with an unrelated name. Under each, verify,
//! lost answers and crash look-ups find our rotations, and an unrelated result (an admin's
//! `locateDevice`, `getFileVaultKey`) is never taken for ours.

use crate::util::*;
use graph_sim::{ResultNames, SimConfig};

const ACTION: &str = "rotateFileVaultKey";

fn styles() -> [ResultNames; 4] {
    [
        ResultNames::Graph,
        ResultNames::Pascal,
        ResultNames::Keyword,
        ResultNames::Typed,
    ]
}

async fn verify_json(
    env: &Env,
    ledger: &std::path::Path,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let mut args = vec![
        "verify".to_string(),
        "--ledger".into(),
        s(ledger),
        "--watch".into(),
        "--interval".into(),
        "1s".into(),
        "--timeout".into(),
        "30s".into(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = env.run(&refs).await;
    let doc = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    (code(&o), doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_every_rotation_under_each_naming_style() {
    for style in styles() {
        let config = SimConfig {
            complete_after: std::time::Duration::from_millis(300),
            action_result_names: style.clone(),
            decoy_results: true,
            ..fast(120)
        };
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let o = env.rotate(&csv, &ledger, &["--rate", "4000/1s"]).await;
        assert_eq!(code(&o), 0, "{style:?}: {}", stderr(&o));
        let (code, doc) = verify_json(&env, &ledger, &[]).await;
        let macs = eligible_macs(&env).len() as u64;
        assert_eq!(code, 0, "{style:?}: {doc}");
        assert_eq!(doc["counts"]["done"], macs, "{style:?}: {doc}");
        assert_eq!(
            doc["unrecognised"],
            serde_json::json!([]),
            "{style:?}: {doc}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_no_rule_knows_is_counted_and_an_alias_for_the_run_recognises_it() {
    let config = SimConfig {
        complete_after: std::time::Duration::from_millis(300),
        action_result_names: ResultNames::Other("FVKR-42".into()),
        decoy_results: true,
        ..fast(120)
    };
    let env = Env::new(config).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env.rotate(&csv, &ledger, &["--rate", "4000/1s"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let macs = eligible_macs(&env).len() as u64;
    let (code, doc) = verify_json(&env, &ledger, &[]).await;
    assert_eq!(code, 1, "nothing recognised: {doc}");
    assert_eq!(doc["counts"]["not-found"], macs, "{doc}");
    let names = doc["unrecognised"].as_array().unwrap();
    let ours = names
        .iter()
        .find(|n| n["action_name"] == "FVKR-42")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(ours["devices"], macs, "{doc}");
    let (code, doc) = verify_json(&env, &ledger, &["--result-name", "FVKR-42"]).await;
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["counts"]["done"], macs, "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_are_looked_up_under_each_naming_style() {
    for style in styles() {
        let config = SimConfig {
            drop: 0.15,
            action_result_names: style.clone(),
            decoy_results: true,
            ..fast(150)
        };
        let env = Env::new(config).await;
        let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
        let o = env
            .rotate(
                &csv,
                &ledger,
                &["--rate", "4000/1s", "--max-attempts", "20"],
            )
            .await;
        assert_eq!(code(&o), 0, "{style:?}: {}", stderr(&o));
        let stats = env.sim.stats();
        for id in eligible_macs(&env) {
            assert_eq!(stats.accepted(ACTION, &id), 1, "{style:?}: {id}");
        }
    }
}
