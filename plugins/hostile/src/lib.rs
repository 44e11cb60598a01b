//! A test-only plugin that misbehaves on purpose, to prove that a bad plugin fails only its own
//! request: `test/trap` panics, `test/loop` never returns, `test/alloc` asks for 1 GiB,
//! `test/ungranted` calls the archive it was not granted, `test/ok` behaves.

use std::hint::black_box;

use serde_json::json;
use wasmpacs_sdk::{Plugin, Request, Response, archive, error};

struct Hostile;

impl Plugin for Hostile {
    fn handle(request: Request) -> Response {
        match request.path.as_str() {
            "test/trap" => panic!("hostile plugin panics on purpose"),
            "test/loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "test/alloc" => {
                let big = vec![1u8; 1 << 30];
                wasmpacs_sdk::json(200, &json!({ "allocated": black_box(big).len() }))
            }
            "test/ungranted" => match archive::find_patients("anyone", None) {
                Ok(found) => wasmpacs_sdk::json(200, &json!({ "found": found.len() })),
                Err(e) => e.into(),
            },
            "test/ok" => wasmpacs_sdk::json(200, &json!({ "ok": true })),
            other => error(404, format!("no such test: {other}")),
        }
    }
}

wasmpacs_sdk::export_plugin!(Hostile);
