//! Local cost of the wire format per item: building and serialising a full batch of rotate posts,
//! and parsing and classifying a full answer. Both are far below a round trip to Graph.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use graph_batch::{BatchBuilder, BatchResponse, MAX_BATCH_SIZE, Request};
use std::hint::black_box;
use std::time::SystemTime;

fn device(n: usize) -> String {
    format!("/deviceManagement/managedDevices/00000000-0000-4000-8000-{n:012x}/rotateFileVaultKey")
}

/// A realistic answer: mostly 204, some 429 with Retry-After, one Graph error body.
fn answer() -> Vec<u8> {
    let items: Vec<serde_json::Value> = (1..=MAX_BATCH_SIZE)
        .map(|n| match n % 10 {
            0 => serde_json::json!({"id": n.to_string(), "status": 429,
                "headers": {"Retry-After": "7", "Content-Type": "application/json"},
                "body": {"error": {"code": "TooManyRequests", "message": "Too many requests",
                    "innerError": {"request-id": "r", "date": "2026-01-01T00:00:00"}}}}),
            7 => serde_json::json!({"id": n.to_string(), "status": 500,
                "body": {"error": {"code": "InternalServerError", "message": "An internal error"}}}),
            _ => serde_json::json!({"id": n.to_string(), "status": 204, "headers": {}}),
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "responses": items })).unwrap()
}

fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(MAX_BATCH_SIZE as u64));
    g.bench_function("build and serialise 20 posts", |b| {
        b.iter(|| {
            let mut builder = BatchBuilder::new(MAX_BATCH_SIZE).unwrap();
            for n in 0..MAX_BATCH_SIZE {
                builder.push(n, Request::action_post(device(n)));
            }
            let batch = builder.finish().pop().unwrap();
            black_box(serde_json::to_vec(&batch.body).unwrap())
        })
    });
    let bytes = answer();
    g.bench_function("parse and classify 20 answers", |b| {
        b.iter(|| {
            let r = BatchResponse::parse(black_box(&bytes)).unwrap();
            let now = SystemTime::now();
            for item in &r.responses {
                black_box(item.classify(now));
                black_box(item.error());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
