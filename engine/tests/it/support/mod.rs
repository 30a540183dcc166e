//! Support for flux-engine's integration tests: the real binary, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `flux-engine` binary of this build: cargo builds it for this test target, with the
/// same dependencies and features, before the tests run.
pub(crate) fn flux_engine_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flux-engine"))
}

/// A `flux-engine` command with logging kept quiet and no colour.
pub(crate) fn flux_engine(args: &[&str]) -> Command {
    let mut cmd = Command::new(flux_engine_bin());
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// `len` bytes that gzip cannot compress (xorshift from `seed`), for objects of a known size.
pub(crate) fn incompressible(len: usize, seed: &mut u32) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 17;
            *seed ^= *seed << 5;
            *seed as u8
        })
        .collect()
}

/// Runs `flux-engine` with `args` in `dir` and returns its output.
pub(crate) fn run_in(dir: &Path, args: &[&str]) -> Output {
    flux_engine(args)
        .current_dir(dir)
        .output()
        .expect("run flux-engine")
}

/// Standard output and error of a finished command, as text.
pub(crate) fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Compares `actual` with the golden file at `path`; with `FLUX_BLESS=1` rewrites it instead.
pub(crate) fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("FLUX_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with FLUX_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs from the actual output (FLUX_BLESS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

pub(crate) mod fault_proxy;
pub(crate) mod http;
pub(crate) mod pipeline;
pub(crate) mod records;
pub(crate) mod run;
pub(crate) mod server;
pub(crate) mod webdriver;

pub(crate) use pipeline::{Pipeline, table};
pub(crate) use run::{Flux, Ran};

/// The AWS emulators started by `tests/emulators.sh up` (tests/run.sh does it).
pub(crate) mod emulators {
    use std::process::Command;

    /// The endpoints and the environment a child process needs to use them.
    #[derive(Debug, Clone)]
    pub(crate) struct Emulators {
        /// kinesis-local.
        pub kinesis: String,
        /// moto_server (S3 and EMR).
        pub s3: String,
        /// moto_server's EMR (the same endpoint as S3).
        pub emr: String,
    }

    /// The running emulators; panics with instructions when they are not running.
    pub(crate) fn get() -> Emulators {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: start the emulators first with \
                     `eval \"$(tests/emulators.sh up)\"` (tests/run.sh does this)"
                )
            })
        };
        let e = Emulators {
            kinesis: var("FLUX_TEST_KINESIS_ENDPOINT"),
            s3: var("FLUX_TEST_S3_ENDPOINT"),
            emr: std::env::var("FLUX_TEST_EMR_ENDPOINT")
                .unwrap_or_else(|_| var("FLUX_TEST_S3_ENDPOINT")),
        };
        for url in [&e.kinesis, &e.s3, &e.emr] {
            assert!(
                url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
                "tests talk to loopback only, not {url}"
            );
        }
        e
    }

    impl Emulators {
        /// Points a child process (the flux-engine binary) at the emulators, with dummy
        /// credentials and no instance-metadata lookups.
        pub(crate) fn apply(&self, cmd: &mut Command) {
            cmd.env("AWS_ENDPOINT_URL_KINESIS", &self.kinesis)
                .env("AWS_ENDPOINT_URL_S3", &self.s3)
                .env("AWS_ENDPOINT_URL_EMR", &self.emr)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ENDPOINT_URL");
        }

        async fn config(&self, endpoint: &str) -> aws_config::SdkConfig {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "test",
                    "test",
                    None,
                    None,
                    "flux-tests",
                ))
                .load()
                .await
        }

        /// A Kinesis client for the emulator.
        pub(crate) async fn kinesis(&self) -> aws_sdk_kinesis::Client {
            aws_sdk_kinesis::Client::new(&self.config(&self.kinesis).await)
        }

        /// An EMR client for the emulator.
        pub(crate) async fn emr(&self) -> aws_sdk_emr::Client {
            aws_sdk_emr::Client::new(&self.config(&self.emr).await)
        }

        /// An S3 client for the emulator (path-style addressing).
        pub(crate) async fn s3(&self) -> aws_sdk_s3::Client {
            let shared = self.config(&self.s3).await;
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(true)
                    .build(),
            )
        }
    }

    /// Splits the first shard ListShards names at the middle of its hash key range and returns
    /// it (the parent). The emulator is shared: a split refused for its shard limit is retried
    /// briefly.
    pub(crate) async fn split_first_shard(
        kinesis: &aws_sdk_kinesis::Client,
        stream: &str,
    ) -> aws_sdk_kinesis::types::Shard {
        let listed = kinesis
            .list_shards()
            .stream_name(stream)
            .send()
            .await
            .unwrap();
        let parent = listed.shards()[0].clone();
        let range = parent.hash_key_range().unwrap();
        let mid = (range.starting_hash_key().parse::<u128>().unwrap()
            + range.ending_hash_key().parse::<u128>().unwrap())
            / 2;
        for attempt in 0.. {
            match kinesis
                .split_shard()
                .stream_name(stream)
                .shard_to_split(parent.shard_id())
                .new_starting_hash_key(mid.to_string())
                .send()
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 10 && format!("{e:?}").contains("LimitExceeded") => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("SplitShard: {e:?}"),
            }
        }
        parent
    }

    /// Creates a stream of `shards` shards and waits until it is ACTIVE. The emulator is shared
    /// and limits the shards of all streams: a creation refused for that is retried for a while.
    pub(crate) async fn create_stream(
        kinesis: &aws_sdk_kinesis::Client,
        stream: &str,
        shards: i32,
    ) {
        for attempt in 0.. {
            match kinesis
                .create_stream()
                .stream_name(stream)
                .shard_count(shards)
                .send()
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 60 && format!("{e:?}").contains("LimitExceeded") => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => panic!("CreateStream: {e:?}"),
            }
        }
        wait_active(kinesis, stream).await;
    }

    /// Waits until `stream` is ACTIVE (after creating or resharding it).
    pub(crate) async fn wait_active(kinesis: &aws_sdk_kinesis::Client, stream: &str) {
        for _ in 0..200 {
            let s = kinesis
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await
                .unwrap();
            if s.stream_description_summary()
                .is_some_and(|d| d.stream_status().as_str() == "ACTIVE")
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("stream {stream} did not become ACTIVE");
    }

    /// A name no other test uses (streams and buckets are per test).
    pub(crate) fn unique(prefix: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        format!(
            "{prefix}-{}-{}-{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// DuckDB, for the SQL tests: the pinned Python package that `tests/emulators.sh` installs.
pub(crate) mod duckdb {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The Python that has the pinned `duckdb` package; panics with instructions without it.
    pub(crate) fn python() -> PathBuf {
        let p = std::env::var_os("FLUX_TEST_DUCKDB_PYTHON").unwrap_or_else(|| {
            panic!(
                "FLUX_TEST_DUCKDB_PYTHON is not set: install DuckDB with \
                 `eval \"$(tests/emulators.sh duckdb)\"` (tests/run.sh does this)"
            )
        });
        PathBuf::from(p)
    }

    /// Runs, in `dir`, a DuckDB session that executes `init` (a file of statements, as
    /// `duckdb -init` does) and then `query`; returns each result row as a JSON object.
    pub(crate) fn query(
        dir: &Path,
        init: &Path,
        query: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        run(&python(), None, dir, init, query)
    }

    /// [`query`] with the DuckDB that has its httpfs and aws extensions installed (see
    /// `DUCKDB_S3_VERSION` in tests/emulators.sh), for views over S3 archives: the views'
    /// `INSTALL`/`LOAD` find them in its extension directory, nothing is downloaded.
    pub(crate) fn query_s3(
        dir: &Path,
        init: &Path,
        query: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        let var = |name: &str| {
            std::env::var_os(name).unwrap_or_else(|| {
                panic!("{name} is not set: start the emulators first with `eval \"$(tests/emulators.sh up)\"` (tests/run.sh does this)")
            })
        };
        let python = PathBuf::from(var("FLUX_TEST_DUCKDB_S3_PYTHON"));
        let extensions = PathBuf::from(var("FLUX_TEST_DUCKDB_S3_EXTENSIONS"));
        run(&python, Some(&extensions), dir, init, query)
    }

    fn run(
        python: &Path,
        extensions: Option<&Path>,
        dir: &Path,
        init: &Path,
        query: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        const SCRIPT: &str = r#"
import duckdb, sys
config = {"extension_directory": sys.argv[3], "autoinstall_known_extensions": False} if sys.argv[3] else {}
con = duckdb.connect(config=config)
con.execute("SET TimeZone = 'UTC'")
with open(sys.argv[1], encoding="utf-8") as f:
    con.execute(f.read())
for (row,) in con.execute("SELECT to_json(t)::VARCHAR FROM (" + sys.argv[2] + ") AS t").fetchall():
    print(row)
"#;
        let out = Command::new(python)
            .args(["-c", SCRIPT])
            .arg(init)
            .arg(query)
            .arg(extensions.map(Path::as_os_str).unwrap_or_default())
            .current_dir(dir)
            .output()
            .map_err(|e| format!("run {}: {e}", python.display()))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}")))
            .collect()
    }

    /// DuckDB's version, e.g. `v2.0.0`.
    pub(crate) fn version() -> String {
        let out = Command::new(python())
            .args(["-c", "import duckdb; print(duckdb.__version__)"])
            .output()
            .expect("run python");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}
pub(crate) mod hive_ddl;
pub(crate) mod sql_grammar;
