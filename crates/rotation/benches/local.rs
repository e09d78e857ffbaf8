//! Local cost of the engine's own work, per row: the ledger's write-ahead appends under their
//! durability policy, replaying a ledger, and reading a device list. Graph's quota, not these,
//! sets the pace of a run; these say how far below it they stay.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rotation::{DeviceList, Ledger, Outcome, Row, RunHeader};
use std::hint::black_box;

const ROWS: usize = 100_000;
const BATCH: usize = 20;

fn header() -> RunHeader {
    RunHeader {
        created_at: "2026-01-01T00:00:00Z".into(),
        ..RunHeader::new(
            "00000000-0000-4000-8000-0000000000aa",
            rotation::Action::FileVault,
            "bench",
            "200/20s".parse().unwrap(),
        )
    }
}

fn id(n: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | n as u128)
}

fn sent(n: usize) -> Row {
    Row::Sent {
        id: id(n),
        attempt: 1,
        at: "2026-01-01T00:00:01.000Z".into(),
    }
}

fn rotated(n: usize) -> Row {
    Row::Outcome {
        id: id(n),
        result: Outcome::Rotated,
        cause: None,
        status: Some(204),
        code: None,
        message: None,
        request_id: Some("5b8e1c52-2d3a-4c8e-9f61-0a7b3c2d1e4f".into()),
        client_request_id: Some("5b8e1c52-2d3a-4c8e-9f61-0a7b3c2d1e4f".into()),
        date: Some("Thu, 01 Jan 2026 00:00:01 GMT".into()),
        at: "2026-01-01T00:00:01.100Z".into(),
    }
}

fn planned(n: usize) -> Row {
    Row::Planned {
        id: id(n),
        name: Some(format!("MAC-{n:06}")),
        serial: Some(format!("C02X{n:08}")),
        user: Some(format!("user{n}@example.test")),
        os: Some("macOS".into()),
        line: Some(n as u64 + 2),
        viewed_at: None,
        viewed_by: None,
    }
}

fn ledger(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("ledger");
    g.sample_size(20);
    // One batch as a run writes it: 20 `sent` rows fsync'd before the request leaves, then 20
    // outcome rows handed to the OS.
    g.throughput(Throughput::Elements(2 * BATCH as u64));
    let mut l = Ledger::create(&dir.path().join("append.jsonl"), &header()).unwrap();
    let mut n = 0;
    g.bench_function(
        "one batch: 20 sent rows + fsync, 20 outcomes + flush",
        |b| {
            b.iter(|| {
                for i in n..n + BATCH {
                    l.append(&sent(i)).unwrap();
                }
                l.sync().unwrap();
                for i in n..n + BATCH {
                    l.append(&rotated(i)).unwrap();
                }
                l.flush().unwrap();
                n += BATCH;
            })
        },
    );
    drop(l);

    // A whole run's ledger: plan, sent and outcome for every device.
    let path = dir.path().join("replay.jsonl");
    let mut l = Ledger::create(&path, &header()).unwrap();
    for i in 0..ROWS / 3 {
        l.append(&planned(i)).unwrap();
    }
    l.append(&Row::PlanDone {
        planned: (ROWS / 3) as u64,
        skipped: 0,
        skip_reasons: Default::default(),
        at: "2026-01-01T00:00:00Z".into(),
    })
    .unwrap();
    for i in 0..ROWS / 3 {
        l.append(&sent(i)).unwrap();
        l.append(&rotated(i)).unwrap();
    }
    l.sync().unwrap();
    drop(l);
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("replay 100k rows", |b| {
        b.iter(|| black_box(rotation::ledger_replay(&path).unwrap()))
    });
    g.finish();
}

fn source(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.csv");
    let mut text = String::from("Device ID,Device name,Serial number,Primary user UPN,OS\n");
    for i in 0..ROWS {
        text.push_str(&format!(
            "{},MAC-{i:06},C02X{i:08},user{i}@example.test,macOS\n",
            id(i)
        ));
    }
    std::fs::write(&path, text).unwrap();
    let source = DeviceList::open(path.to_str().unwrap()).unwrap();
    let mut g = c.benchmark_group("source");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("read 100k CSV rows", |b| {
        b.iter(|| {
            let mut rows = 0usize;
            source
                .for_each(|d| {
                    rows += black_box(d.line) as usize & 1;
                    Ok(())
                })
                .unwrap();
            rows
        })
    });
    g.finish();
}

criterion_group!(benches, ledger, source);
criterion_main!(benches);
