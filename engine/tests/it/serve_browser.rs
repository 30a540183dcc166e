//! The console in a real browser: Debian's headless Chromium, driven through WebDriver
//! (`chromedriver`), against `flux-engine serve` and the emulators. It loads the page, fills the
//! replay template's form, sees a validation error at its line, runs a search, starts a dry run
//! and then a real replay into kinesis-local, watches the progress reach 100 %, and cancels a
//! second, slow replay. Screenshots of the main screens are saved in a temporary folder, and
//! with `FLUX_BLESS=1` over the ones in docs/console/ that docs/console.md shows.

use std::path::PathBuf;

use crate::support::emulators::{self, unique};
use crate::support::server::{quickstart_dir, start};
use crate::support::webdriver::{self, Browser};
use serde_json::json;

fn shot(b: &Browser, name: &str) {
    let dir = if std::env::var_os("FLUX_BLESS").is_some_and(|v| v == "1") {
        crate::support::repo_root().join("docs/console")
    } else {
        std::env::temp_dir().join("flux-console-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(format!("{name}.png"));
    b.screenshot(&path);
}

/// Fills the replay form; `from` as given (an invalid one shows a diagnostic).
fn fill_replay(b: &Browser, target: &str, from: &str, rate: &str) {
    b.fill("#var-incident", "INC-77");
    b.fill("#var-archive", "file://./archive");
    b.fill("#var-target", target);
    b.fill("#var-rate", rate);
    b.fill("#var-to", "2026-11-26T00:00:00Z");
    b.fill("#var-from", from);
}

/// Clicks "Dry run", waits for it to succeed, then clicks "Start run"; returns the run id.
fn dry_run_then_run(b: &Browser) -> String {
    b.wait_for(
        "a valid form",
        "return document.querySelector('#check-state').textContent.startsWith('valid')",
    );
    b.click("#btn-dry");
    b.wait_for(
        "the dry run to succeed",
        "return /succeeded/.test(document.querySelector('#dry-state').textContent)",
    );
    b.wait_for(
        "Start run to be enabled",
        "return !document.querySelector('#btn-run').disabled",
    );
    b.click("#btn-run");
    b.wait_for("the run page", "return location.hash.startsWith('#run/')")
        .as_bool()
        .unwrap();
    b.js("return location.hash.slice(5)", json!([]))
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_console_searches_replays_and_cancels_in_a_browser() {
    if !webdriver::available() {
        panic!(
            "Chromium and chromedriver are missing: apt-get install chromium chromium-driver (tests/run.sh does)"
        );
    }
    let emu = emulators::get();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kinesis = rt.block_on(emu.kinesis());
    let (fast, slow) = (unique("console"), unique("console-slow"));
    rt.block_on(emulators::create_stream(&kinesis, &fast, 2));
    rt.block_on(emulators::create_stream(&kinesis, &slow, 1));
    eprintln!("streams created");
    let dir = quickstart_dir();
    eprintln!("quickstart archived");
    let served = start(dir.path(), &["--archive", "file://./archive"], &[]);
    let base = format!("http://{}", served.addr);
    eprintln!("serving on {base}");
    let b = Browser::start(1280, 860);

    // The page loads; its load time is printed (not asserted).
    b.goto(&format!("{base}/#pipelines"));
    b.wait_for(
        "the pipeline list",
        "return document.querySelectorAll('#pipeline-list button').length >= 4",
    );
    let load = b.js("const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime", json!([]));
    eprintln!("page load: {load} ms");

    // The replay template's form, from its variables; a bad `from` shows the diagnostic at
    // the line that uses it.
    b.click("#pipeline-list li:nth-child(4) button");
    b.find("#pipeline-detail[data-pipeline=\"replay.toml.j2\"] #var-incident");
    fill_replay(&b, &fast, "yesterday", "800");
    b.wait_for(
        "the diagnostic of `from` at line 41",
        "const d = document.querySelector('.diag[data-line=\"41\"]'); return d && d.textContent.includes('RFC 3339')",
    );
    let diag = b.text(".diag[data-line=\"41\"]");
    assert!(diag.contains("sources.archive.from"), "{diag}");
    b.js(
        "document.querySelector('.diag').scrollIntoView({block: 'center'})",
        json!([]),
    );
    shot(&b, "validation");
    b.fill("#var-from", "2026-11-25T00:00:00Z");

    // A dry run, then the real replay; the run page reaches 100 %.
    let id = dry_run_then_run(&b);
    b.wait_for(
        "the replay to succeed",
        "return document.querySelector('#r-state').textContent === 'succeeded'",
    );
    assert_eq!(b.text("#r-fraction"), "100 %");
    shot(&b, "run");
    let run = served.client().get(&format!("/api/runs/{id}")).json();
    assert_eq!(run["targets"], json!([fast]));
    let sink = run["summary"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "stream")
        .unwrap()
        .clone();
    assert!(sink["delivered"].as_u64().unwrap() > 0, "{sink}");

    // A search: results as a table, a record expanded.
    b.goto(&format!("{base}/#search"));
    b.fill(
        "#s-where",
        "@.data.status == 'cancelled' && @.data.total > 100",
    );
    b.fill("#s-limit", "20");
    b.click("#s-go");
    b.wait_for(
        "the search to end",
        "return document.querySelector('#s-counts').textContent.startsWith('done')",
    );
    let rows = b.js(
        "return document.querySelectorAll('#s-results tr.record-row').length",
        json!([]),
    );
    assert_eq!(rows, 20);
    b.click("#s-results tr.record-row button");
    assert!(
        b.text("#s-results tr.record-detail pre")
            .contains("\"order_id\"")
    );
    shot(&b, "search");

    // A second, slow replay is cancelled from its page.
    b.goto(&format!("{base}/#pipelines/replay.toml.j2"));
    b.find("#pipeline-detail[data-pipeline=\"replay.toml.j2\"] #var-incident");
    fill_replay(&b, &slow, "2026-11-25T00:00:00Z", "2");
    // The form kept the first replay's values; new ones take back what the page showed for
    // those (the dry run that allowed Start run), so no wait below can pass on a stale state.
    assert_eq!(b.text("#dry-state"), "");
    assert_eq!(
        b.js(
            "return document.querySelector('#btn-run').disabled",
            json!([])
        ),
        json!(true)
    );
    let slow_id = dry_run_then_run(&b);
    b.wait_for(
        "records being delivered",
        "const r = document.querySelector('#r-stages tr[data-stage=\"stream\"] td:nth-child(4)'); return r && r.textContent !== '' && r.textContent !== '0'",
    );
    shot(&b, "run-live");
    b.click("#r-cancel");
    b.wait_for(
        "the cancelled state",
        "return document.querySelector('#r-state').textContent === 'cancelled'",
    );
    let cancelled = served.client().get(&format!("/api/runs/{slow_id}")).json();
    assert_eq!(cancelled["cancelled_by"], "local");
    assert_eq!(cancelled["summary"]["outcome"], "interrupted");

    // The history and the archive health.
    b.goto(&format!("{base}/#runs"));
    b.wait_for(
        "the history",
        "return document.querySelectorAll('#run-table tbody tr').length >= 4",
    );
    shot(&b, "runs");
    b.goto(&format!("{base}/#health"));
    b.click("#health-form button");
    b.wait_for(
        "the health report",
        "return document.querySelector('#h-report table')",
    );
    shot(&b, "health");
    drop(b);
    for s in [&fast, &slow] {
        let _ = rt.block_on(kinesis.delete_stream().stream_name(s).send());
    }
}
